"""The weather file an EnergyPlus model's spec names: shipped with EnergyPlus, or uploaded next to the model.

Only file names are compared here (:mod:`~validibot_pipelines.validators.energyplus.worker.install` lists the
shipped files without running EnergyPlus).
"""

from __future__ import annotations

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage
from validibot_pipelines.orchestration.models import SPEC_SUFFIX, ModelRecord, attach_upload, upload_problem
from validibot_pipelines.validators.energyplus.envelopes import MIME_EPW
from validibot_pipelines.validators.energyplus.intake import EnergyPlusLimits
from validibot_pipelines.validators.energyplus.modelfiles import attach_model_files
from validibot_pipelines.validators.energyplus.worker.install import find_shipped_weather, shipped_weather_files


def attach(record: ModelRecord, store_uri: str, limits: EnergyPlusLimits | None = None) -> None:
    """Resolve the spec's ``weather:`` to a shipped file or an .epw uploaded next to the model, then store the
    files the model itself reads (Schedule:File CSVs, ##include'd files: :mod:`.modelfiles`)."""
    _attach_weather(record, store_uri)
    if record.accepted:
        attach_model_files(record, store_uri, (limits or EnergyPlusLimits()).file_max_bytes)


def _attach_weather(record: ModelRecord, store_uri: str) -> None:
    wanted = record.validation_spec().weather
    shipped = ", ".join(shipped_weather_files())
    if not wanted:
        record.status = Status.FAILED_VALIDATION
        record.findings.append(ValidationMessage(
            severity=Severity.ERROR, code="WEATHER_MISSING", location="validation spec",
            text=f"{record.file_name}: no weather file; add `weather:` to {record.file_name}{SPEC_SUFFIX} naming a "
                 f"shipped file ({shipped}) or an .epw uploaded next to the model"))
        return
    found = find_shipped_weather(wanted)
    if found is not None:
        record.weather_name = found.name
        return
    if not attach_upload(record, store_uri, wanted, MIME_EPW, "weather"):
        record.status = Status.FAILED_VALIDATION
        record.findings.append(ValidationMessage(
            severity=Severity.ERROR, code="WEATHER_NOT_FOUND", location="validation spec",
            text=f"{record.file_name}: weather file '{wanted}' " + (upload_problem(record, wanted) or (
                 "is neither shipped with EnergyPlus nor uploaded next to the model; upload it to the landing zone "
                 f"or use one of: {shipped}"))))
