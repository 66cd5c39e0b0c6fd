"""Validate one file in-process, without a daemon: intake → probe → simulate → assertions.

Used by ``validibot validate``. The same orchestration functions back the Dagster assets; native code still
only runs in the worker launched by the backend.
"""

from __future__ import annotations

from pathlib import Path

from validibot_pipelines.assertions import AssertionResult, verdict
from validibot_pipelines.envelopes import OutputEnvelope, Severity, Status, ValidationMessage
from validibot_pipelines.envelopes.fmi import ReferenceComparison
from validibot_pipelines.orchestration import energyplus, fmi, mesh
from validibot_pipelines.orchestration.launch import Backend
from validibot_pipelines.orchestration.models import ModelRecord, intake
from validibot_pipelines.storage import get_store, join_uri


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
    record = intake(source_uri, store_uri=store_uri, spec_uri=spec_uri)
    if not record.accepted:
        return _from_record(record)
    if record.kind == "energyplus":
        ep_out, _ = energyplus.simulate(record, store_uri=store_uri, backend=backend, attempt=attempt)
        result = _merge(record, ep_out)
        if ep_out.status == Status.SUCCESS:
            apply_assertions(result, energyplus.check(record, ep_out))
        return result
    if record.kind == "mesh":
        return _mesh(record, store_uri=store_uri, backend=backend, attempt=attempt)
    probe_out, _ = fmi.probe(record, store_uri=store_uri, backend=backend, attempt=attempt)
    if probe_out.status != Status.SUCCESS:
        return _merge(record, probe_out)
    sim_out, _ = fmi.simulate(record, store_uri=store_uri, backend=backend, attempt=attempt,
                              simulation_timeout_seconds=simulation_timeout_seconds)
    result = _merge(record, sim_out, probe_out)
    if sim_out.status == Status.SUCCESS:
        apply_assertions(result, fmi.check(record, sim_out, probe_out))
        apply_reference(result, sim_out, record.file_name)
    return result


def apply_reference(out: OutputEnvelope, sim_out: OutputEnvelope, file_name: str) -> None:
    """A result outside the spec's reference band makes the run failed_validation, naming the signals."""
    comparison = sim_out.outputs.get("reference")
    if comparison is None:
        return
    result = ReferenceComparison.model_validate(comparison)
    if not result.passed:
        out.messages.append(ValidationMessage(
            severity=Severity.ERROR, code="REFERENCE_MISMATCH", location=result.file,
            text=f"{file_name}: the result does not match {result.file} within "
                 f"tolerance {result.tolerance:g}: {result.summary()}"))
        out.status = Status.FAILED_VALIDATION


def _mesh(record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str) -> OutputEnvelope:
    """Preview, then (if Gmsh could read the part) the volume mesh; assertions whenever a mesh exists."""
    preview_out, _ = mesh.preview(record, store_uri=store_uri, backend=backend, attempt=attempt)
    if preview_out.status != Status.SUCCESS:
        return _merge(record, preview_out)
    mesh_out, _ = mesh.mesh(record, store_uri=store_uri, backend=backend, attempt=attempt)
    result = _merge(record, mesh_out, preview_out, earlier_key="preview")
    if mesh_out.outputs.get("msh_uri"):
        apply_assertions(result, mesh.check(record, mesh_out, preview_out))
    return result


_INTAKE_VALIDATORS = {"energyplus": energyplus.VALIDATOR, "mesh": mesh.PREVIEW_VALIDATOR}


def _from_record(record: ModelRecord) -> OutputEnvelope:
    validator = _INTAKE_VALIDATORS.get(record.kind, fmi.PROBE_VALIDATOR)
    out = OutputEnvelope(run_id=f"{record.sha256[:16]}-intake", validator=validator,
                         status=record.status, messages=list(record.findings))
    out.outputs = {"sha256": record.sha256, "file_name": record.file_name}
    return out


def _merge(record: ModelRecord, out: OutputEnvelope, earlier: OutputEnvelope | None = None,
           earlier_key: str = "probe") -> OutputEnvelope:
    """One envelope for the whole run: intake findings, the earlier step's (probe / preview) messages and
    outputs (under ``earlier_key``, without the bulky variable catalog), then the last step's."""
    merged = out.model_copy(deep=True)
    merged.messages = [*record.findings, *(earlier.messages if earlier else []), *out.messages]
    merged.outputs = {"sha256": record.sha256, "file_name": record.file_name, **out.outputs}
    if earlier is not None:
        merged.outputs[earlier_key] = dict(earlier.outputs)  # the whole probe, variable catalog included
    return merged


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
