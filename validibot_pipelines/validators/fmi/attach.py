"""Side files an FMU's spec names, found next to the model at intake and stored with it by checksum."""

from __future__ import annotations

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage
from validibot_pipelines.orchestration.models import MIME_CSV, ModelRecord, attach_upload, upload_problem


def attach_input_timeseries(record: ModelRecord, store_uri: str) -> None:
    """Resolve the spec's ``input_timeseries:`` (FMI) to a CSV uploaded next to the model."""
    wanted = record.validation_spec().input_timeseries
    if wanted and not attach_upload(record, store_uri, wanted, MIME_CSV, "input-timeseries"):
        record.status = Status.FAILED_VALIDATION
        record.findings.append(ValidationMessage(
            severity=Severity.ERROR, code="INPUT_TIMESERIES_NOT_FOUND", location="validation spec",
            text=f"{record.file_name}: input time series '{wanted}' " + (upload_problem(record, wanted) or (
                 "was not uploaded next to the model; upload the CSV (header: time,<input names>) to the landing "
                 "zone beside it or drop `input_timeseries:`"))))


def attach_reference(record: ModelRecord, store_uri: str) -> None:
    """Resolve the spec's ``reference:`` (FMI) to a reference result CSV uploaded next to the model."""
    reference = record.validation_spec().reference
    if reference and not attach_upload(record, store_uri, reference.file, MIME_CSV, "reference"):
        record.status = Status.FAILED_VALIDATION
        record.findings.append(ValidationMessage(
            severity=Severity.ERROR, code="REFERENCE_NOT_FOUND", location="validation spec",
            text=f"{record.file_name}: reference result '{reference.file}' " + (
                 upload_problem(record, reference.file) or (
                     "was not uploaded next to the model; upload the CSV (header: time,<output names>, the FMI "
                     "Cross-Check format) to the landing zone beside it or drop `reference:`"))))


def attach(record: ModelRecord, store_uri: str, _limits: object = None) -> None:
    """The spec's ``input_timeseries:`` and ``reference:`` CSVs (registered as the validator's ``attach``)."""
    attach_input_timeseries(record, store_uri)
    attach_reference(record, store_uri)
