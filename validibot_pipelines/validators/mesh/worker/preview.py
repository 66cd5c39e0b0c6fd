"""Preview: a fast surface mesh (Gmsh's default 2D algorithm) as ``{vertices, triangles, bbox}`` JSON, for viewers.

It is also the first time the worker opens the CAD file, so an unreadable or empty part is reported here,
before any volume meshing is attempted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.validators.mesh.envelopes import BoundingBox, MeshPreviewInputs, MeshPreviewOutputs
from validibot_pipelines.validators.mesh.worker.calls import (
    MeshFailure,
    call,
    engine_unavailable,
    fail,
    limit_failure_of,
    set_limits,
)


@dataclass
class PreviewResult:
    outputs: MeshPreviewOutputs
    preview_json: Path
    warnings: list[str]


def unreadable(name: str, problem: str) -> MeshFailure:
    return MeshFailure("MESH_CAD_UNREADABLE", f"{name}: Gmsh/OpenCASCADE could not read the part ({problem}); "
                       "re-export it from the CAD tool as STEP AP203/AP214 with solids")


def preview_part(part: Path, name: str, workdir: Path, inputs: MeshPreviewInputs,
                 log: Callable[[str], None] = print) -> PreviewResult:
    """Surface-mesh ``part``; raise :class:`MeshFailure` for unreadable or empty geometry."""
    start = time.monotonic()
    target = workdir / f"{Path(name).stem}.preview.json"
    answer = call("preview", {"part": str(part), "preview": str(target), "min_size_divisor": inputs.min_size_divisor,
                              "max_size_divisor": inputs.max_size_divisor}, workdir, inputs.timeout_seconds)
    if not answer.ok:
        if limited := limit_failure_of(name, answer):
            raise limited
        if answer.child.timed_out:
            raise MeshFailure("MESH_PREVIEW_TIMEOUT", f"{name}: the preview surface mesh did not finish within "
                              f"{inputs.timeout_seconds:g} s; simplify the part (tiny faces, sliver edges)")
        if answer.engine_broken:
            raise engine_unavailable(name, answer)
        raise unreadable(name, answer.problem)
    data = answer.data
    if not data["surfaces"]:
        raise MeshFailure("MESH_EMPTY_GEOMETRY", f"{name}: the file holds no surfaces or solids (empty geometry); "
                          "export the part's bodies, not just its assembly structure or sketches")
    warnings = []
    if not data["volumes"]:
        warnings.append(f"{name}: the part has {data['surfaces']} surface(s) but no solid; a volume mesh needs a "
                        "closed solid — export solids (not a surface model) from the CAD tool")
    outputs = MeshPreviewOutputs(
        volumes=len(data["volumes"]), surfaces=data["surfaces"], vertex_count=data["vertex_count"],
        triangle_count=data["triangle_count"], bbox=BoundingBox(**data["bbox"]),
        execution_seconds=round(time.monotonic() - start, 3),
    )
    log(f"preview of {name}: {outputs.triangle_count} triangles, {outputs.volumes} volume(s), "
        f"diagonal {outputs.bbox.diagonal:.4g}")
    return PreviewResult(outputs=outputs, preview_json=target, warnings=warnings)


def run(ctx: RunContext) -> None:
    item = ctx.envelope.file_with_role("primary-model")
    inputs = MeshPreviewInputs.model_validate(ctx.envelope.inputs)
    timeout = min(inputs.timeout_seconds, ctx.envelope.context.timeout_seconds)
    set_limits(ctx.envelope.context.limits)
    try:
        result = preview_part(ctx.files["primary-model"], item.name, ctx.workdir / "preview",
                              inputs.model_copy(update={"timeout_seconds": timeout}), ctx.log)
    except MeshFailure as exc:
        fail(ctx, exc)
        return
    artifact = ctx.store_artifact(result.preview_json, result.preview_json.name, "mesh", "application/json")
    result.outputs.preview_uri = artifact.uri
    ctx.output.outputs = result.outputs.model_dump(mode="json")
    ctx.output.messages.extend(ValidationMessage(severity=Severity.WARNING, code="MESH_NO_SOLIDS", text=text)
                               for text in result.warnings)
    ctx.output.status = Status.SUCCESS
