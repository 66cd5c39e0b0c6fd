"""Validate one file in-process, without a daemon: intake, then the validator's own steps, then assertions.

Used by ``validibot validate``: each validator's ``validate`` (its ``launch.py``) runs its steps with the same
launch functions that back its Dagster assets; native code still only runs in the worker launched by the backend.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from validibot_pipelines.assertions import AssertionResult, verdict
from validibot_pipelines.envelopes import OutputEnvelope, Severity, Status, ValidationMessage
from validibot_pipelines.orchestration.launch import Backend
from validibot_pipelines.orchestration.models import ModelRecord, intake
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.validators.registry import get


def _stage_spec(spec: Path, store_uri: str, sha_hint: str) -> str:
    """Copy a --spec file into the store under the model's file name, as a sidecar upload would be."""
    uri = join_uri(store_uri, "cli-specs", sha_hint, spec.name)
    get_store(uri).upload_file(spec, uri, content_type="application/yaml")
    return uri


def validate_file(model: Path, spec: Path | None, *, store_uri: str, backend: Backend, attempt: str,
                  simulation_timeout_seconds: float = 300) -> OutputEnvelope:
    """Validate one local file of any supported kind and return one output envelope for the whole run.

    With ``--spec`` and no sidecar, a spec next to the model (``<name>.validation.yaml``) is not read: the
    command line says exactly which spec applies. Weather files named by the spec resolve next to the model.
    """
    source_uri = model.resolve().as_uri()
    spec_uri = _stage_spec(spec, store_uri, attempt) if spec else None
    # Its record lives apart from the landing zone's models (a file here may share a name with one there).
    record = intake(source_uri, store_uri=store_uri, spec_uri=spec_uri, model_name=f"cli/{attempt}/{model.name}")
    if not record.accepted:
        return _from_record(record)
    return get(record.kind).validate(record, store_uri=store_uri, backend=backend, attempt=attempt,
                                     simulation_timeout_seconds=simulation_timeout_seconds)


def _from_record(record: ModelRecord) -> OutputEnvelope:
    validator = get(record.kind).steps[0]  # the step that would have run first
    out = OutputEnvelope(run_id=f"{record.sha256[:16]}-intake", validator=validator,
                         status=record.status, messages=list(record.findings))
    out.outputs = {"sha256": record.sha256, "file_name": record.file_name}
    return out


def merge(record: ModelRecord, out: OutputEnvelope, earlier: OutputEnvelope | None = None,
          earlier_key: str = "probe") -> OutputEnvelope:
    """One envelope for the whole run: intake findings, the earlier step's (probe / preview) messages and
    outputs (under ``earlier_key``, without the bulky variable catalog), then the last step's."""
    merged = out.model_copy(deep=True)
    merged.messages = [*record.findings, *(earlier.messages if earlier else []), *out.messages]
    merged.outputs = {"sha256": record.sha256, "file_name": record.file_name, **out.outputs}
    if earlier is not None:
        merged.outputs[earlier_key] = dict(earlier.outputs)  # the whole probe, variable catalog included
    return merged


def judged(record: ModelRecord, out: OutputEnvelope,
           check: Callable[[ModelRecord, OutputEnvelope], list[AssertionResult]]) -> OutputEnvelope:
    """A one-step validator's envelope for the whole run: intake findings and the step's, plus its assertions
    (``check``) when the step succeeded."""
    result = merge(record, out)
    if out.status == Status.SUCCESS:
        apply_assertions(result, check(record, out))
    return result


def apply_assertions(out: OutputEnvelope, results: list[AssertionResult]) -> None:
    """Record each assertion on the envelope; a failed ERROR assertion makes it failed_validation."""
    out.outputs["assertions"] = [r.model_dump(mode="json") for r in results]
    for r in results:
        if r.passed:
            continue
        severity = Severity(str(r.severity).split(".")[-1].upper())
        detail = r.error or r.message or f"'{r.expr}' is false"
        out.messages.append(ValidationMessage(severity=severity, code="ASSERTION_FAILED",
                                              text=f"assertion '{r.name}' failed: {detail}", location=r.expr))
    if verdict(results) != Status.SUCCESS:
        out.status = Status.FAILED_VALIDATION
