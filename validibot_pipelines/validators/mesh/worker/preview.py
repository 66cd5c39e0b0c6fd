"""Preview: a fast surface mesh as ``{vertices, triangles, bbox}`` JSON, for viewers.

Gmsh's robust default 2D algorithm (Frontal-Delaunay) first, then the others of ``preview.algorithms`` in turn
when one fails or runs out of its time (each forked from the one import, :mod:`.surface`). It is also the first
time the worker opens the CAD file, so an unreadable or empty part is reported here, before any volume meshing
is attempted; a part Gmsh reads but no algorithm can surface-mesh only gets a warning (``MESH_PREVIEW_FAILED``),
and the volume mesh — the validation proper — is still attempted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.sandbox.limits import cpu_seconds
from validibot_pipelines.validators.mesh.envelopes import (
    BoundingBox,
    MeshPreviewInputs,
    MeshPreviewOutputs,
    PreviewAttempt,
)
from validibot_pipelines.validators.mesh.worker.calls import (
    ChildAnswer,
    MeshFailure,
    call,
    engine_unavailable,
    fail,
    forked_answer,
    limit_failure_of,
    limits,
    set_limits,
)
from validibot_pipelines.validators.mesh.worker.reasons import OPEN_SURFACE, open_edges, open_surface_text
from validibot_pipelines.validators.mesh.worker.surface import INSPECT


@dataclass
class PreviewResult:
    outputs: MeshPreviewOutputs
    preview_json: Path | None  # None: no algorithm meshed the surfaces (a MESH_PREVIEW_FAILED warning says so)
    warnings: list[tuple[str, str]]  # (code, text)


def unreadable(name: str, problem: str) -> MeshFailure:
    return MeshFailure("MESH_CAD_UNREADABLE", f"{name}: Gmsh/OpenCASCADE could not read the part ({problem}); "
                       "re-export it from the CAD tool as STEP AP203/AP214 with solids")


ALGORITHM_NAMES = {1: "MeshAdapt", 2: "Automatic", 5: "Delaunay", 6: "Frontal-Delaunay"}
MARGIN_SECONDS = 10.0  # the child's own time beyond the import and the algorithms' timeouts


def _timeouts(inputs: MeshPreviewInputs) -> list[float]:
    return [a.timeout_seconds or inputs.timeout_seconds for a in inputs.algorithms]


def _attempts(name: str, answer: ChildAnswer, inputs: MeshPreviewInputs) -> list[PreviewAttempt]:
    """How each algorithm ended, from the child's records, with the sandbox's limit detection; raises the
    limit's own failure (``MESH_MEMORY_LIMIT``…) when an algorithm was stopped at a sandbox limit, as the volume
    mesh would be stopped there too."""
    raw = answer.data.get("attempts")
    attempts = []
    for (timeout, algorithm), item in zip(zip(_timeouts(inputs), inputs.algorithms, strict=True),
                                          raw if isinstance(raw, list) else [], strict=False):
        if not isinstance(item, dict) or not isinstance(item.get("record"), dict):
            break
        ended = forked_answer(item["record"], {"ok": item.get("error") is None, "error": item.get("error")},
                              timeout, f"{getattr(answer.child, 'mode', 'sandbox')}+fork")
        if limited := limit_failure_of(name, ended):
            raise limited
        outcome = "ok" if ended.ok else "timeout" if ended.child.timed_out else "failed"
        attempts.append(PreviewAttempt(algorithm_2d=algorithm.algorithm_2d, outcome=outcome,
                                       seconds=round(ended.child.seconds, 3),
                                       detail="" if ended.ok else ended.problem[:2000]))
    return attempts


def preview_part(part: Path, name: str, workdir: Path, inputs: MeshPreviewInputs,
                 log: Callable[[str], None] = print, timeout_seconds: float | None = None) -> PreviewResult:
    """Surface-mesh ``part`` with the first of ``inputs.algorithms`` that succeeds; raise :class:`MeshFailure`
    for unreadable or empty geometry. When every algorithm fails on a part Gmsh could read, the result has no
    preview (``preview_json`` None) and a warning: the volume mesh is still worth attempting.
    ``timeout_seconds`` bounds the child as a whole (the step's own timeout)."""
    start = time.monotonic()
    target = workdir / f"{Path(name).stem}.preview.json"
    lim = limits()
    algorithms = [{"algorithm_2d": a.algorithm_2d, "timeout": t, "cpu_seconds": cpu_seconds(lim, t)}
                  for a, t in zip(inputs.algorithms, _timeouts(inputs), strict=True)]
    budget = inputs.timeout_seconds + sum(_timeouts(inputs)) + MARGIN_SECONDS
    answer = call("preview", {"part": str(part), "preview": str(target), "min_size_divisor": inputs.min_size_divisor,
                              "max_size_divisor": inputs.max_size_divisor, "algorithms": algorithms}, workdir,
                  min(budget, timeout_seconds or budget))
    found = answer.read_json(INSPECT)
    if not answer.ok and (found is None or "surfaces" not in found):  # the import itself did not finish
        if limited := limit_failure_of(name, answer):
            raise limited
        if answer.child.timed_out:
            raise MeshFailure("MESH_PREVIEW_TIMEOUT", f"{name}: Gmsh/OpenCASCADE did not finish reading the part "
                              f"within {answer.child.seconds:.0f} s; simplify the part (tiny faces, sliver edges) "
                              "or raise preview.timeout_seconds")
        if answer.engine_broken:
            raise engine_unavailable(name, answer)
        raise unreadable(name, answer.problem)
    if not answer.ok and (limited := limit_failure_of(name, answer)):
        raise limited
    data = answer.data if answer.ok else {**(found or {}), "vertex_count": 0, "triangle_count": 0}
    try:
        bbox = BoundingBox(**data["bbox"]) if data.get("surfaces") else None
        surfaces, volumes = int(data["surfaces"]), data["volumes"]
    except (KeyError, TypeError, ValueError, ValidationError):
        raise unreadable(name, "the Gmsh process left an unusable result (malformed part facts)") from None
    if not surfaces or bbox is None:
        raise MeshFailure("MESH_EMPTY_GEOMETRY", f"{name}: the file holds no surfaces or solids (empty geometry); "
                          "export the part's bodies, not just its assembly structure or sketches")
    attempts = _attempts(name, answer, inputs)
    warnings = []
    if not volumes and (holes := open_edges(data)):
        warnings.append((OPEN_SURFACE, open_surface_text(name, holes)))
    elif not volumes:
        warnings.append(("MESH_NO_SOLIDS", f"{name}: the part has {surfaces} surface(s) but no solid; a volume "
                         "mesh needs a closed solid — export solids (not a surface model) from the CAD tool"))
    meshed = answer.ok and data.get("algorithm") is not None and target.is_file()
    if not meshed:
        tried = "; ".join(f"{a.algorithm_2d} {ALGORITHM_NAMES.get(a.algorithm_2d, '')}: {a.outcome} ({a.detail})"
                          for a in attempts) or answer.problem
        warnings.append(("MESH_PREVIEW_FAILED", f"{name}: no 2D algorithm could surface-mesh the part for the "
                         f"preview ({tried}); the volume mesh is still attempted. If it fails too, look for tiny "
                         "faces, sliver edges or self-intersections in the CAD tool; preview.algorithms and "
                         "preview.timeout_seconds in the spec choose the algorithms and their time"))
    outputs = MeshPreviewOutputs(
        volumes=len(volumes), surfaces=surfaces, vertex_count=int(data["vertex_count"]) if meshed else 0,
        triangle_count=int(data["triangle_count"]) if meshed else 0, bbox=bbox,
        execution_seconds=round(time.monotonic() - start, 3), algorithm=data["algorithm"] if meshed else None,
        attempts=attempts,
    )
    log(f"preview of {name}: {outputs.triangle_count} triangles (2D algorithm {outputs.algorithm}), "
        f"{outputs.volumes} volume(s), diagonal {outputs.bbox.diagonal:.4g}")
    return PreviewResult(outputs=outputs, preview_json=target if meshed else None, warnings=warnings)


def run(ctx: RunContext) -> None:
    item = ctx.envelope.file_with_role("primary-model")
    inputs = MeshPreviewInputs.model_validate(ctx.envelope.inputs)
    set_limits(ctx.envelope.context.limits)
    try:
        result = preview_part(ctx.files["primary-model"], item.name, ctx.workdir / "preview", inputs, ctx.log,
                              timeout_seconds=ctx.envelope.context.timeout_seconds)
    except MeshFailure as exc:
        fail(ctx, exc)
        return
    if result.preview_json is not None:
        artifact = ctx.store_artifact(result.preview_json, result.preview_json.name, "mesh", "application/json")
        result.outputs.preview_uri = artifact.uri
    ctx.output.outputs = result.outputs.model_dump(mode="json")
    ctx.output.messages.extend(ValidationMessage(severity=Severity.WARNING, code=code, text=text)
                               for code, text in result.warnings)
    ctx.output.status = Status.SUCCESS
