"""Meshing validator assets: cad_file → preview_mesh → volume_mesh, with asset checks.

* ``cad_file``: control-plane intake (ISO 10303-21 header/trailer, size cap; STL size/structure), canonical copy
  by checksum. Blocking check ``intake_accepted``.
* ``preview_mesh``: surface mesh on the isolated worker (Gmsh's default Frontal-Delaunay, falling back to the
  spec's other 2D algorithms) → ``<name>.preview.json`` {vertices, triangles, bbox}, rendered in the metadata.
  Blocking check ``preview_succeeded``: a part Gmsh cannot read or that holds no geometry is never
  volume-meshed; one no 2D algorithm could surface-mesh fails it as a warning, and the volume mesh still runs.
* ``volume_mesh``: the strategy search (early stop, fall-through, per-volume fan-out, merge) on the worker →
  ``.msh``, ``<name>_result.json``, ``<name>.quality.json``. Checks ``mesh_produced``, ``quality_targets_met``
  and ``cel_assertions``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
)

from validibot_pipelines.assets.backend_step import StepEnv, WorkerStep, worker_step_asset
from validibot_pipelines.assets.batch import ModelResult
from validibot_pipelines.assets.checks import assertions_check, status_check
from validibot_pipelines.assets.intake import intake_asset
from validibot_pipelines.assets.metadata import frame_table, metrics_table, png_markdown
from validibot_pipelines.assets.plots import surface_png
from validibot_pipelines.envelopes import OutputEnvelope
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.storage import get_store
from validibot_pipelines.validators.mesh import launch as mesh
from validibot_pipelines.validators.mesh.partitions import mesh_partitions

GROUP = "mesh"

cad_file = intake_asset(GROUP, "cad_file", partitions_def=mesh_partitions, kinds={"gmsh"},
                        accepted_means="STEP header/trailer (or STL structure) and size checks passed",
                        fact_keys=("format", "schema", "originating_system", "solid_count", "face_count"),
                        description="The uploaded STEP / STL part, checked as text and stored once by checksum.")


def _present_preview(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope,
                     meta: dict[str, Any]) -> ModelResult:
    facts = out.outputs
    if facts:
        meta.update({"volumes": facts["volumes"], "surfaces": facts["surfaces"],
                     "vertex_count": facts["vertex_count"], "triangle_count": facts["triangle_count"],
                     "bbox": MetadataValue.json(facts["bbox"]), "algorithm_2d": facts.get("algorithm")})
        if facts.get("attempts"):
            meta["attempts"] = frame_table(pd.DataFrame(facts["attempts"],
                                                        columns=["algorithm_2d", "outcome", "seconds", "detail"]))
    if facts and facts.get("preview_uri"):
        meta["preview_uri"] = MetadataValue.url(facts["preview_uri"])
        document = json.loads(get_store(facts["preview_uri"]).read_bytes(facts["preview_uri"]))
        meta["preview"] = png_markdown(surface_png(document, record.file_name), record.file_name)
    return ModelResult(out.model_dump(mode="json"), meta, [_preview_check(out)])


def _preview_check(out: OutputEnvelope) -> AssetCheckResult:
    """Blocks the volume mesh when Gmsh could not read the part; a part it read but no 2D algorithm could
    surface-mesh fails the check as a warning only, so the volume mesh is still attempted."""
    failed = [m for m in out.messages if m.code == "MESH_PREVIEW_FAILED"]
    if out.status.value != "success" or not failed:
        return status_check("preview_succeeded", out)
    return AssetCheckResult(check_name="preview_succeeded", passed=False, severity=AssetCheckSeverity.WARN,
                            description=failed[0].text[:2000], metadata={"status": out.status.value})


def _launch_preview(record: ModelRecord, _up: Mapping[str, Any],
                    env: StepEnv) -> tuple[OutputEnvelope | None, LaunchRecord]:
    return mesh.preview(record, preview_timeout_seconds=env.settings.mesh_strategy_timeout_seconds, **env.launch_args)


preview_mesh = worker_step_asset(WorkerStep(
    "preview_mesh", GROUP, mesh_partitions, {"gmsh"}, upstream=("cad_file",), blocking=("preview_succeeded",),
    checks={"preview_succeeded": "Gmsh read the part and surface-meshed its geometry"},
    launch=_launch_preview, present=_present_preview,
    description="A coarse surface mesh (sizes diagonal/100 … diagonal/20; Frontal-Delaunay, then the fallbacks) as "
                "JSON, and a picture of it."))


def _present_volume(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope,
                    meta: dict[str, Any]) -> ModelResult:
    preview_out = OutputEnvelope.model_validate(up["preview_mesh"])
    result = out.outputs
    if result:
        meta.update(_mesh_metadata(out))
    produced = bool(result.get("msh_uri"))
    results = mesh.check(record, out, preview_out) if produced else []
    value = {**out.model_dump(mode="json"), "assertions": [r.model_dump(mode="json") for r in results]}
    produced_check = status_check("mesh_produced", out) if not produced else AssetCheckResult(
        check_name="mesh_produced", passed=True, description=f"{result['total_elements']} elements "
        f"({result['strategy']})", metadata={"msh_uri": MetadataValue.url(result["msh_uri"])})
    # Assertions are evaluated whenever a mesh exists, even below target, so users see every verdict at once.
    return ModelResult(value, meta, [produced_check, _targets_check(record, out),
                                     assertions_check(results, out, evaluated=produced)])


def _launch_volume(record: ModelRecord, _up: Mapping[str, Any],
                   env: StepEnv) -> tuple[OutputEnvelope | None, LaunchRecord]:
    return mesh.mesh(record, strategy_timeout_seconds=env.settings.mesh_strategy_timeout_seconds, **env.launch_args)


volume_mesh = worker_step_asset(WorkerStep(
    "volume_mesh", GROUP, mesh_partitions, {"gmsh"}, upstream=("cad_file", "preview_mesh"), checks={
        "mesh_produced": "some strategy meshed every volume within its time and element limits",
        "quality_targets_met": "the chosen mesh meets the spec's quality targets (SICN / gamma)",
        "cel_assertions": "the spec's CEL assertions over o (mesh metrics), i (targets), p (part facts)"},
    launch=_launch_volume, present=_present_volume,
    description="The quality-scored volume mesh: .msh, result and quality JSON in the store; metrics and attempts "
                "tables."))


def _mesh_metadata(out: OutputEnvelope) -> dict[str, Any]:
    result = out.outputs
    attempts = pd.DataFrame([
        {"volume": a["volume"], "strategy": a["strategy"], "outcome": a["outcome"], "seconds": a["seconds"],
         "score": a["score"], "sicn_min": (a["quality"] or {}).get("sicn_min"),
         "elements": (a["quality"] or {}).get("elements"), "detail": a["detail"],
         "optimiser": a.get("optimiser", "")} for a in result["attempts"]],
        columns=["volume", "strategy", "outcome", "seconds", "score", "sicn_min", "elements", "detail", "optimiser"])
    if not result.get("msh_uri"):  # some volume failed: what did mesh, and every attempt
        return {"attempts": frame_table(attempts),
                "volumes_meshed": MetadataValue.json([v["volume"] for v in result["volumes"]]),
                "failed_volumes": MetadataValue.json(result.get("failed_volumes", {}))}
    return {
        "metrics": metrics_table(out), "attempts": frame_table(attempts), "strategy": result["strategy"],
        "score": MetadataValue.float(result["score"]), "total_elements": result["total_elements"],
        "total_nodes": result["total_nodes"], "sicn_min": MetadataValue.float(result["sicn_min"]),
        "gamma_min": MetadataValue.float(result["gamma_min"]), "volume_count": len(result["volumes"]),
        "msh_uri": MetadataValue.url(result["msh_uri"]), "result_uri": MetadataValue.url(result["result_uri"]),
        "quality_uri": MetadataValue.url(result["quality_uri"]),
    }


def _targets_check(record: ModelRecord, out: OutputEnvelope) -> AssetCheckResult:
    result = out.outputs
    if not result.get("msh_uri"):
        return AssetCheckResult(check_name="quality_targets_met", passed=False, severity=AssetCheckSeverity.ERROR,
                                description=f"not evaluated: no mesh was produced ({out.status.value})")
    targets = mesh.mesh_inputs(record).targets.model_dump(exclude_none=True)
    rows = pd.DataFrame([{"target": k, "required": v, "achieved": result[k], "met": result[k] >= v}
                         for k, v in targets.items()], columns=["target", "required", "achieved", "met"])
    text = (", ".join(f"{k} {result[k]:.3f} (≥ {v:g})" for k, v in targets.items())
            or f"no targets in the spec; sicn_min {result['sicn_min']:.3f} > 0 (no inverted elements)")
    return AssetCheckResult(check_name="quality_targets_met", passed=bool(result["targets_met"]),
                            severity=AssetCheckSeverity.ERROR, description=text,
                            metadata={"targets": frame_table(rows), "strategy": result["strategy"]})


ASSETS = [cad_file, preview_mesh, volume_mesh]
