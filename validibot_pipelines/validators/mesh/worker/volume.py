"""Full mesh: an exhaustive search over Gmsh strategies per volume, with early stop, fan-out and merge.

One sandboxed child per part (:func:`~validibot_pipelines.validators.mesh.worker.child.mesh`) imports the part
once and forks one process per candidate from there: for each volume of the part (``meshing.parallel_volumes``
at a time) the strategies are tried in order, each under its own timeout; a candidate that fails, crashes,
times out, hits a sandbox limit or exceeds ``max_elements`` is dropped and the search falls through to the
next strategy; a candidate meeting every quality target stops the search (``early_stop``); otherwise the
best-scoring candidate wins. The winners are merged into one ``.msh`` (in a forked process too);
``<name>_result.json`` and ``<name>.quality.json`` describe how and how well. A part that fails for its
geometry is searched once more after shape healing (:mod:`.healing`); a part that still fails says why in
Gmsh's terms (:mod:`.reasons`) and keeps what did mesh (the good volumes' results, every attempt).

The child only runs the search. This worker decides again, itself, from what every candidate left (read with
the sandbox's checks): each attempt's outcome, the early stop and the winners; it takes the child's merge only
when it merged exactly those winners, and merges them in a child of their own otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from validibot_pipelines.envelopes import Status, ValidationMetric
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.sandbox import UnsafeResult
from validibot_pipelines.runtime.sandbox.limits import cpu_seconds
from validibot_pipelines.validators.mesh.envelopes import (
    CEL_METRICS,
    MeshInputs,
    MeshOutputs,
    MeshQuality,
    MeshStrategy,
    StrategyAttempt,
    VolumeResult,
)
from validibot_pipelines.validators.mesh.worker.calls import (
    ChildAnswer,
    MeshFailure,
    call,
    engine_unavailable,
    fail,
    forked_answer,
    info,
    limit_failure_of,
    limits,
    set_limits,
)
from validibot_pipelines.validators.mesh.worker.child import INSPECT, MERGE, MERGED_MSH, candidate_key
from validibot_pipelines.validators.mesh.worker.healing import CAD_SUFFIXES, geometry_reason, heal
from validibot_pipelines.validators.mesh.worker.preview import unreadable
from validibot_pipelines.validators.mesh.worker.quality import EXTRA_KEYS, judge, rank, score
from validibot_pipelines.validators.mesh.worker.reasons import (
    OPEN_SURFACE,
    classify,
    failure_text,
    open_edges,
    open_surface_text,
    overall,
)

#: How long the part's child may run in all when the caller names no budget (the envelope's default timeout):
#: the backstop behind the per-candidate timeouts the child enforces itself.
DEFAULT_TIMEOUT_SECONDS = 3600.0


@dataclass
class MeshResult:
    outputs: MeshOutputs
    msh: Path
    result_json: Path
    quality_json: Path
    #: How often the part was imported in the sandbox for this mesh (the child's count, plus any candidate that
    #: imported it again): 1.
    part_imports: int = 0
    #: INFO ``(code, text)`` lines: shape healing tried, and that it helped.
    notes: list[tuple[str, str]] = dataclasses.field(default_factory=list)


@dataclass
class _Winner:
    result: VolumeResult
    msh: str  # the candidate's key


def _timeout(strategy: MeshStrategy, inputs: MeshInputs) -> float:
    return strategy.timeout_seconds or inputs.meshing.strategy_timeout_seconds


def _request(part: Path, stem: str, inputs: MeshInputs) -> dict[str, Any]:
    options = inputs.meshing
    lim = limits()
    strategies = [{**s.model_dump(), "timeout": t, "cpu_seconds": cpu_seconds(lim, t)}
                  for s in options.strategies for t in [_timeout(s, inputs)]]
    return {"part": str(part), "name": stem, "strategies": strategies, "targets": inputs.targets.model_dump(),
            "early_stop": options.early_stop, "max_elements": options.max_elements,
            "parallel": options.parallel_volumes, "import_timeout": options.strategy_timeout_seconds,
            "merge_timeout": options.strategy_timeout_seconds,
            "merge_cpu_seconds": cpu_seconds(lim, options.strategy_timeout_seconds)}


def _attempt(volume: int, strategy: MeshStrategy, answer: ChildAnswer, inputs: MeshInputs) -> StrategyAttempt:
    base = {"volume": volume, "strategy": strategy.name, "seconds": round(answer.child.seconds, 3)}
    if not answer.ok:
        outcome = "timeout" if answer.child.timed_out else "failed"
        return StrategyAttempt(**base, outcome=outcome, detail=answer.problem)
    raw = answer.data.get("quality")
    if not isinstance(raw, dict) or not raw.get("elements"):
        return StrategyAttempt(**base, outcome="failed", detail="produced no 3D elements")
    try:
        quality = MeshQuality(**raw)
    except (ValidationError, TypeError):
        return StrategyAttempt(**base, outcome="failed", detail="the Gmsh process left an unusable result "
                               "(malformed quality)")
    outcome, detail = judge(quality.model_dump(), inputs.targets.model_dump(), inputs.meshing.max_elements)
    optimiser = answer.data.get("optimiser")
    return StrategyAttempt(**base, outcome=outcome, quality=quality, detail=detail,
                           optimiser=optimiser[:500] if isinstance(optimiser, str) else "",
                           score=score(raw) if outcome != "too_many_elements" else None)


def _fork_mode(answer: ChildAnswer) -> str:
    return f"{getattr(answer.child, 'mode', 'sandbox')}+fork"


def _volume(volume: int, answer: ChildAnswer, inputs: MeshInputs, log: Callable[[str], None], imported: int,
            ) -> tuple[list[StrategyAttempt], _Winner | None, int]:
    """Every attempt on one volume, the chosen candidate (None: all failed) and how many times its candidates
    imported the part again (beyond the ``imported`` they inherited), judged from the candidates' files; the
    early stop is this worker's own."""
    records = answer.data.get("candidates")
    records = records if isinstance(records, dict) else {}
    mode = _fork_mode(answer)
    reimports = 0
    attempts: list[StrategyAttempt] = []
    candidates: list[StrategyAttempt] = []
    strategies = inputs.meshing.strategies
    for index, strategy in enumerate(strategies):
        key = candidate_key(volume, strategy.name)
        result = answer.read_json(f"{key}.json")
        if result is not None and type(result.get("imports")) is int:
            reimports += max(0, result["imports"] - imported)
        record = records.get(key)
        if record is None and result is not None and result.get("ok"):  # the child ended before reporting it
            record = {"returncode": 0, "timed_out": False, "seconds": result.get("seconds", 0.0)}
        if record is None:
            why = f"the part's Gmsh process ended first ({answer.problem})" if not answer.ok else \
                "the part's Gmsh process did not run it"
            attempt = StrategyAttempt(volume=volume, strategy=strategy.name, outcome="failed", seconds=0.0,
                                      detail=f"not run: {why}")
        else:
            ended = forked_answer(record, result, _timeout(strategy, inputs), mode)
            attempt = _attempt(volume, strategy, ended, inputs)
        attempts.append(attempt)
        log(f"volume {volume}: {strategy.name} -> {attempt.outcome} in {attempt.seconds:.2f} s"
            + (f", score {attempt.score}" if attempt.score is not None else "")
            + (f" ({attempt.detail})" if attempt.detail else ""))
        if attempt.outcome in ("met_targets", "below_targets"):
            candidates.append(attempt)
        if attempt.outcome == "met_targets" and inputs.meshing.early_stop:
            attempts.extend(StrategyAttempt(volume=volume, strategy=s.name, outcome="skipped", seconds=0.0,
                                            detail="targets already met") for s in strategies[index + 1:])
            break
    if not candidates:
        return attempts, None, reimports
    best = max(candidates, key=lambda a: rank(a.outcome, a.score))
    assert best.quality is not None and best.score is not None
    return attempts, _Winner(VolumeResult(volume=volume, strategy=best.strategy, score=best.score,
                                          targets_met=best.outcome == "met_targets", quality=best.quality),
                             candidate_key(volume, best.strategy)), reimports


def _facts(name: str, answer: ChildAnswer, inputs: MeshInputs) -> dict[str, Any]:
    """The part's volumes, surfaces and bounding box as the child found them on import; raises the import's
    failure (unreadable part, engine unavailable, a sandbox limit) as the search never started."""
    found = answer.read_json(INSPECT)
    if found is None or "volumes" not in found:
        failed = answer
        if answer.child.returncode == -signal.SIGALRM:  # the child's import timer (child.mesh)
            failed = dataclasses.replace(answer, child=dataclasses.replace(
                answer.child, timed_out=True, seconds=inputs.meshing.strategy_timeout_seconds))
        if limited := limit_failure_of(name, failed):
            raise limited
        if failed.engine_broken:
            raise engine_unavailable(name, failed)
        raise unreadable(name, failed.problem if found is None else str(found.get("error")))
    volumes, surfaces, bbox = found.get("volumes"), found.get("surfaces"), found.get("bbox")
    well_formed = (isinstance(volumes, list) and all(type(v) is int for v in volumes) and len(set(volumes)) ==
                   len(volumes) and type(surfaces) is int
                   and (not volumes or (isinstance(bbox, dict) and isinstance(bbox.get("diagonal"), float | int))))
    if not well_formed:
        raise unreadable(name, "the Gmsh process left an unusable result (malformed part facts)")
    return found


def _merge(answer: ChildAnswer, winners: list[_Winner], name: str, stem: str, msh: Path, workdir: Path,
           inputs: MeshInputs) -> dict[str, Any]:
    """The merged mesh at ``msh`` and its quality: the child's merge when it merged exactly ``winners``, else a
    merge in a child of its own. Raises ``MESH_MERGE_FAILED``."""
    timeout = inputs.meshing.strategy_timeout_seconds
    keys = [w.msh for w in winners]
    record = answer.data.get("merge")
    merged: ChildAnswer | None = None
    if isinstance(record, dict) and record.get("inputs") == keys:
        merged = forked_answer(record, answer.read_json(f"{MERGE}.json"), timeout, _fork_mode(answer))
        if merged.ok:
            try:
                answer.copy_out(MERGED_MSH, msh)
            except (FileNotFoundError, UnsafeResult) as exc:
                merged = dataclasses.replace(merged, ok=False, data={
                    "ok": False, "error": f"the Gmsh process left an unusable result ({exc})"})
    else:  # the child did not merge what this worker chose (it ended early, or chose otherwise)
        pieces = []
        for winner in winners:
            piece = workdir / f"volume{winner.result.volume}-{winner.result.strategy}.msh"
            try:
                pieces.append(str(answer.copy_out(f"{winner.msh}.msh", piece)))
            except (FileNotFoundError, UnsafeResult) as exc:
                raise MeshFailure("MESH_MERGE_FAILED", f"{name}: merging the volume meshes failed (the Gmsh process "
                                  f"left an unusable result ({exc}))", system_fault=True) from None
        merged = call("merge", {"inputs": pieces, "volumes": [w.result.volume for w in winners], "msh": str(msh),
                                "name": stem}, workdir, timeout)
    if not merged.ok or not isinstance(merged.data.get("quality"), dict):
        raise MeshFailure("MESH_MERGE_FAILED", f"{name}: merging the volume meshes failed ({merged.problem})",
                          system_fault=True)
    return merged.data["quality"]


@dataclass
class _Search:
    """One run of the part's child, judged: its answer (whose files stay valid until this thread's next call),
    the part's volumes, every attempt, each volume's winner (None: none) and the import count."""

    answer: ChildAnswer
    volumes: list[int]
    attempts: list[StrategyAttempt]
    winners: list[_Winner | None]
    imports: int

    @property
    def failed(self) -> list[int]:
        return [v for v, w in zip(self.volumes, self.winners, strict=True) if w is None]


def _search(part: Path, name: str, stem: str, workdir: Path, inputs: MeshInputs, log: Callable[[str], None],
            timeout_seconds: float | None, heal: bool = False) -> _Search:
    answer = call("mesh", {**_request(part, stem, inputs), "heal": heal}, workdir,
                  timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
    found = _facts(name, answer, inputs)
    volumes: list[int] = found["volumes"]
    if not volumes and (holes := open_edges(found)):
        raise MeshFailure(OPEN_SURFACE, open_surface_text(name, holes))
    if not volumes:
        raise MeshFailure("MESH_NO_SOLIDS", f"{name}: the part has no solid to fill with a volume mesh "
                          f"({found['surfaces']} surface(s)); export closed solids from the CAD tool")
    log(f"meshing {name}{' (healed)' if heal else ''}: {len(volumes)} volume(s), {len(inputs.meshing.strategies)} "
        f"strategies, targets {inputs.targets.model_dump(exclude_none=True) or 'none (first valid mesh)'}")
    imported = found["imports"] if type(found.get("imports")) is int else 0
    results = [_volume(v, answer, inputs, log, imported) for v in volumes]
    return _Search(answer, volumes, [a for attempts, _, _ in results for a in attempts],
                   [w for _, w, _ in results], imported + sum(again for _, _, again in results))


def _failure(name: str, search: _Search, notes: list[tuple[str, str]]) -> MeshFailure:
    """Some volume has no mesh: the reason Gmsh gave, read per failed volume, and what did mesh (the good
    volumes' results, every attempt) kept as the envelope's outputs."""
    by_volume = {v: classify([a for a in search.attempts if a.volume == v]) for v in search.failed}
    groups: dict[str, list[int]] = {}
    for volume, reason in by_volume.items():
        groups.setdefault(reason.code, []).append(volume)
    texts = [failure_text(name, vols, by_volume[vols[0]], search.attempts) for vols in groups.values()]
    partial = {"volumes": [w.result.model_dump(mode="json") for w in search.winners if w is not None],
               "failed_volumes": {str(v): r.code for v, r in by_volume.items()},
               "attempts": [a.model_dump(mode="json") for a in search.attempts]}
    return MeshFailure(overall(by_volume).code, " | ".join(texts), outputs=partial, notes=notes)


def mesh_part(part: Path, name: str, workdir: Path, inputs: MeshInputs, log: Callable[[str], None] = print,
              timeout_seconds: float | None = None) -> MeshResult:
    """Mesh every volume of ``part`` and merge; raise :class:`MeshFailure` when no mesh can be produced.

    Unmet quality targets do not raise: the best mesh is still returned (``outputs.targets_met`` is False)
    so the user can see how close it came. ``timeout_seconds`` bounds the part's sandboxed child as a whole
    (the step's own timeout; each candidate has its own inside it). A volume that fails for its geometry gets
    one more search on the healed part (:func:`~.healing.heal`), as does a STEP part without a solid (an
    unsewn shell); a part that still fails raises with the good volumes' results and every attempt in
    :attr:`MeshFailure.outputs`.
    """
    start = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    stem = Path(name).stem
    notes: list[tuple[str, str]] = []
    try:
        search = _search(part, name, stem, workdir, inputs, log, timeout_seconds)
    except MeshFailure as exc:
        if exc.code != "MESH_NO_SOLIDS" or part.suffix.lower() not in CAD_SUFFIXES:
            raise
        healed, exc.notes = heal(part, name, "it holds no solid (an unsewn or open shell may be closed by healing)",
                                 lambda: _search(part, name, stem, workdir / "healed", inputs, log, timeout_seconds,
                                                 heal=True))
        if healed is None:
            raise
        search, notes = healed, exc.notes
    if search.failed and (why := geometry_reason(search.failed, search.attempts)):
        healed, notes = heal(part, name, why, lambda: _search(part, name, stem, workdir / "healed", inputs, log,
                                                              timeout_seconds, heal=True))
        if healed is None:
            raise _failure(name, search, notes)
        search = healed
    elif search.failed:
        raise _failure(name, search, notes)
    winners = [w for w in search.winners if w is not None]
    msh = workdir / f"{stem}.msh"
    total = _merge(search.answer, winners, name, stem, msh, workdir, inputs)
    names = list(dict.fromkeys(w.result.strategy for w in winners))
    outputs = MeshOutputs(
        strategy=names[0] if len(names) == 1 else ",".join(names), score=score(total),
        targets_met=all(w.result.targets_met for w in winners),
        sicn_min=total["sicn_min"], sicn_avg=total["sicn_avg"], sicn_max=total["sicn_max"],
        gamma_min=total["gamma_min"], gamma_avg=total["gamma_avg"], total_elements=total["elements"],
        **{key: total.get(key) for key in EXTRA_KEYS},
        total_nodes=total["nodes"], volumes=[w.result for w in winners], attempts=search.attempts,
        execution_seconds=round(time.monotonic() - start, 3),
    )
    result_json = workdir / f"{stem}_result.json"
    result_json.write_text(json.dumps(_result_document(name, inputs, outputs), indent=2))
    quality_json = workdir / f"{stem}.quality.json"
    quality_json.write_text(json.dumps(_quality_document(name, inputs, outputs, total), indent=2))
    return MeshResult(outputs=outputs, msh=msh, result_json=result_json, quality_json=quality_json,
                      part_imports=search.imports, notes=notes)


def _result_document(name: str, inputs: MeshInputs, out: MeshOutputs) -> dict[str, Any]:
    return {
        "part": name, "strategy": out.strategy, "score": out.score, "targets": inputs.targets.model_dump(),
        "targets_met": out.targets_met, "total_elements": out.total_elements, "total_nodes": out.total_nodes,
        "volumes": [v.model_dump() for v in out.volumes],
        "timings": [{"volume": a.volume, "strategy": a.strategy, "outcome": a.outcome, "seconds": a.seconds}
                    for a in out.attempts],
        "execution_seconds": out.execution_seconds,
    }


def _quality_document(name: str, inputs: MeshInputs, out: MeshOutputs, total: dict[str, Any]) -> dict[str, Any]:
    return {
        "part": name,
        "sicn": {"min": out.sicn_min, "avg": out.sicn_avg, "max": out.sicn_max},
        "gamma": {"min": out.gamma_min, "avg": out.gamma_avg},
        "sj": {"min": out.sj_min, "avg": out.sj_avg}, "sige": {"min": out.sige_min, "avg": out.sige_avg},
        "histograms": total["histograms"], "targets": inputs.targets.model_dump(), "targets_met": out.targets_met,
        "per_volume": [{"volume": v.volume, **v.quality.model_dump()} for v in out.volumes],
    }


def run(ctx: RunContext) -> None:
    item = ctx.envelope.file_with_role("primary-model")
    inputs = MeshInputs.model_validate(ctx.envelope.inputs)
    set_limits(ctx.envelope.context.limits)
    try:
        result = mesh_part(ctx.files["primary-model"], item.name, ctx.workdir / "mesh", inputs, ctx.log,
                           timeout_seconds=ctx.envelope.context.timeout_seconds)
    except MeshFailure as exc:
        fail(ctx, exc)
        return
    out = result.outputs
    out.msh_uri = ctx.store_artifact(result.msh, result.msh.name, "mesh", "model/x-gmsh-msh").uri
    out.result_uri = ctx.store_artifact(result.result_json, result.result_json.name, "file", "application/json").uri
    out.quality_uri = ctx.store_artifact(result.quality_json, result.quality_json.name, "file",
                                         "application/json").uri
    ctx.output.outputs = out.model_dump(mode="json")
    info(ctx, result.notes)
    ctx.output.metrics.extend(ValidationMetric(name=key, value=getattr(out, key)) for key in CEL_METRICS)
    ctx.output.metrics.append(ValidationMetric(name="score", value=out.score))
    ctx.output.metrics.append(ValidationMetric(name="execution_seconds", value=out.execution_seconds, unit="s"))
    if not out.targets_met:
        misses = "; ".join(f"volume {v.volume} ({v.strategy}): {', '.join(inputs.targets.unmet(v.quality))}"
                           for v in out.volumes if not v.targets_met)
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("MESH_QUALITY_TARGETS_NOT_MET", f"{item.name}: no strategy met the quality targets; the best "
                         f"mesh ({out.strategy}, score {out.score}) has {misses}; refine the part's small features, "
                         "add finer strategies under meshing.strategies, or relax the spec's quality targets")
        return
    ctx.output.status = Status.SUCCESS
    ctx.log(f"meshed {item.name} with {out.strategy}: {out.total_elements} elements, SICN min {out.sicn_min:.3f}")
