"""Meshing validator, control-plane side: launch the preview and the volume mesh, evaluate the checks.

Gmsh never runs here: both steps are envelopes handed to the backend (``mesh-preview`` and ``mesh`` runners).
"""

from __future__ import annotations

from typing import Any

from validibot_pipelines import __version__
from validibot_pipelines.assertions import AssertionResult, evaluate_assertions
from validibot_pipelines.envelopes import OutputEnvelope, Status, ValidatorRef
from validibot_pipelines.orchestration.launch import Backend, launch_step, model_run_id, model_tags
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.validators.mesh.envelopes import (
    CEL_METRICS,
    MeshingOptions,
    MeshInputs,
    MeshPreviewInputs,
    PreviewOptions,
)

PREVIEW_VALIDATOR = ValidatorRef(id="mesh-preview", type="mesh-preview", version=__version__)
MESH_VALIDATOR = ValidatorRef(id="mesh", type="mesh", version=__version__)


def mesh_inputs(record: ModelRecord, strategy_timeout_seconds: float | None = None) -> MeshInputs:
    """The spec's ``quality:`` targets and ``meshing:`` options; the deployment's strategy timeout applies
    unless the spec sets its own."""
    spec = record.validation_spec()
    meshing = spec.meshing or MeshingOptions()
    spec_sets_timeout = spec.meshing is not None and "strategy_timeout_seconds" in spec.meshing.model_fields_set
    if strategy_timeout_seconds and not spec_sets_timeout:
        meshing = meshing.model_copy(update={"strategy_timeout_seconds": strategy_timeout_seconds})
    return MeshInputs(targets=spec.quality or MeshInputs().targets, meshing=meshing)


def preview_inputs(record: ModelRecord, strategy_timeout_seconds: float | None = None) -> MeshPreviewInputs:
    """The spec's ``preview:`` algorithms; each may take ``preview.timeout_seconds``, else the spec's
    ``meshing.strategy_timeout_seconds``, else the deployment's strategy timeout (else 120 s)."""
    spec = record.validation_spec()
    options = spec.preview or PreviewOptions()
    timeout = options.timeout_seconds or mesh_inputs(record, strategy_timeout_seconds).meshing.strategy_timeout_seconds
    return MeshPreviewInputs(timeout_seconds=timeout, algorithms=options.algorithms)


def preview(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str,
    preview_timeout_seconds: float | None = None, timeout_seconds: int = 3600, context: Any = None,
) -> tuple[OutputEnvelope, LaunchRecord]:
    inputs = preview_inputs(record, preview_timeout_seconds)
    return launch_step(
        store_uri=store_uri, run_id=model_run_id(record, "preview", attempt), validator=PREVIEW_VALIDATOR,
        files=[record.input_file("primary-model")], inputs=inputs.model_dump(mode="json"), backend=backend,
        timeout_seconds=timeout_seconds, context=context, tags=model_tags(record),
    )


def mesh(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str,
    strategy_timeout_seconds: float | None = None, timeout_seconds: int = 3600, context: Any = None,
) -> tuple[OutputEnvelope, LaunchRecord]:
    inputs = mesh_inputs(record, strategy_timeout_seconds)
    return launch_step(
        store_uri=store_uri, run_id=model_run_id(record, "mesh", attempt), validator=MESH_VALIDATOR,
        files=[record.input_file("primary-model")], inputs=inputs.model_dump(mode="json"), backend=backend,
        timeout_seconds=timeout_seconds, context=context, tags=model_tags(record),
    )


def cel_outputs(out: OutputEnvelope) -> dict[str, Any]:
    """``o`` for CEL: exactly the issue's metric names, plus the score and whether the targets were met."""
    metrics = {m.name: m.value for m in out.metrics}
    bound = {name: metrics[name] for name in CEL_METRICS if name in metrics}
    bound["score"] = metrics.get("score")
    bound["targets_met"] = out.outputs.get("targets_met")
    bound["volume_count"] = len(out.outputs.get("volumes", []))
    return bound


def check(record: ModelRecord, mesh_out: OutputEnvelope, preview_out: OutputEnvelope | None = None,
          ) -> list[AssertionResult]:
    """``o`` = mesh metrics (``o.sicn_min > 0.2``), ``i`` = the spec's quality targets, ``p`` = part facts."""
    spec = record.validation_spec()
    if not spec.assertions:
        return []
    facts = dict(record.facts)
    if preview_out is not None and preview_out.outputs:
        facts.update({k: preview_out.outputs[k] for k in ("volumes", "surfaces", "triangle_count")})
        facts["bbox_diagonal"] = preview_out.outputs["bbox"]["diagonal"]
    targets = (spec.quality.model_dump(exclude_none=True) if spec.quality else {})
    return evaluate_assertions(spec.assertions, inputs=targets, outputs=cel_outputs(mesh_out), probe=facts)


def validate_in_process(record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str,
                        simulation_timeout_seconds: float = 300) -> OutputEnvelope:
    """``validibot validate``: preview, then (if Gmsh could read the part) the volume mesh; assertions whenever
    a mesh exists. (The CLI's timeout is the worker's; strategy timeouts come from the spec.)"""
    from validibot_pipelines.orchestration.single import apply_assertions, merge

    preview_out, _ = preview(record, store_uri=store_uri, backend=backend, attempt=attempt)
    if preview_out.status != Status.SUCCESS:
        return merge(record, preview_out)
    mesh_out, _ = mesh(record, store_uri=store_uri, backend=backend, attempt=attempt)
    result = merge(record, mesh_out, preview_out, earlier_key="preview")
    if mesh_out.outputs.get("msh_uri"):
        apply_assertions(result, check(record, mesh_out, preview_out))
    return result


def summary(out: OutputEnvelope) -> list[str]:
    """``validibot validate``'s line for a part: mesh size, strategy and quality."""
    o = out.outputs
    if "sicn_min" not in o:
        return []
    return [f"  mesh: {o['total_elements']} elements, {o['total_nodes']} nodes, strategy {o['strategy']}, "
            f"SICN min/avg {o['sicn_min']:.3f}/{o['sicn_avg']:.3f}, gamma min/avg "
            f"{o['gamma_min']:.3f}/{o['gamma_avg']:.3f}, targets met: {o['targets_met']}"]
