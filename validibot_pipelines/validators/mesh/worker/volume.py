"""Full mesh: an exhaustive search over Gmsh strategies per volume, with early stop, fan-out and merge.

For each volume of the part (in parallel processes, ``meshing.parallel_volumes`` at a time) the strategies are
tried in order, each in its own Gmsh child under its timeout. A candidate that fails, times out or exceeds
``max_elements`` is dropped and the search falls through to the next strategy; a candidate meeting every
quality target stops the search (``early_stop``); otherwise the best-scoring candidate wins. The winners are
merged into one ``.msh``; ``<name>_result.json`` and ``<name>.quality.json`` describe how and how well.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validibot_pipelines.envelopes import Status, ValidationMetric
from validibot_pipelines.runtime.context import RunContext
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
    MeshFailure,
    call,
    engine_unavailable,
    fail,
    kill_all,
    limit_failure_of,
    set_limits,
)
from validibot_pipelines.validators.mesh.worker.preview import unreadable
from validibot_pipelines.validators.mesh.worker.quality import score


@dataclass
class MeshResult:
    outputs: MeshOutputs
    msh: Path
    result_json: Path
    quality_json: Path


@dataclass
class _Winner:
    result: VolumeResult
    msh: Path


def _try(part: Path, volume: int, strategy: MeshStrategy, diagonal: float, inputs: MeshInputs,
         workdir: Path) -> tuple[StrategyAttempt, Path | None]:
    options = inputs.meshing
    timeout = strategy.timeout_seconds or options.strategy_timeout_seconds
    msh = workdir / f"volume{volume}-{strategy.name}.msh"
    answer = call("volume", {"part": str(part), "volume": volume, "strategy": strategy.model_dump(),
                             "diagonal": diagonal, "max_elements": options.max_elements, "msh": str(msh)},
                  workdir, timeout)
    seconds = round(answer.child.seconds, 3)
    base = {"volume": volume, "strategy": strategy.name, "seconds": seconds}
    if not answer.ok:
        outcome = "timeout" if answer.child.timed_out else "failed"
        return StrategyAttempt(**base, outcome=outcome, detail=answer.problem), None
    raw = answer.data["quality"]
    if not raw["elements"]:
        return StrategyAttempt(**base, outcome="failed", detail="produced no 3D elements"), None
    quality = MeshQuality(**raw)
    if quality.elements > options.max_elements:
        return StrategyAttempt(**base, outcome="too_many_elements", quality=quality,
                               detail=f"{quality.elements:,} elements > max_elements {options.max_elements:,}"), None
    misses = inputs.targets.unmet(quality)
    return StrategyAttempt(**base, outcome="below_targets" if misses else "met_targets", score=score(raw),
                           quality=quality, detail="; ".join(misses)), msh


def search_volume(part: Path, volume: int, diagonal: float, inputs: MeshInputs, workdir: Path,
                  log: Callable[[str], None], cancel: threading.Event | None = None,
                  ) -> tuple[list[StrategyAttempt], _Winner | None]:
    """Try the strategies on one volume; return every attempt and the chosen candidate (None: all failed).

    ``cancel`` is set when the worker is being stopped: no new candidate starts, and the running ones are
    killed (:func:`~validibot_pipelines.validators.mesh.worker.calls.kill_all`); a worker killed outright takes its
    children with it through PDEATHSIG.
    """
    attempts: list[StrategyAttempt] = []
    candidates: list[tuple[StrategyAttempt, Path]] = []
    strategies = inputs.meshing.strategies
    for index, strategy in enumerate(strategies):
        if cancel is not None and cancel.is_set():
            break
        attempt, msh = _try(part, volume, strategy, diagonal, inputs, workdir)
        attempts.append(attempt)
        log(f"volume {volume}: {strategy.name} -> {attempt.outcome} in {attempt.seconds:.2f} s"
            + (f", score {attempt.score}" if attempt.score is not None else "")
            + (f" ({attempt.detail})" if attempt.detail else ""))
        if msh is not None:
            candidates.append((attempt, msh))
        if attempt.outcome == "met_targets" and inputs.meshing.early_stop:
            attempts.extend(StrategyAttempt(volume=volume, strategy=s.name, outcome="skipped", seconds=0.0,
                                            detail="targets already met") for s in strategies[index + 1:])
            break
    if not candidates:
        return attempts, None
    best, msh = max(candidates, key=lambda c: (c[0].outcome == "met_targets", c[0].score or 0.0))
    assert best.quality is not None and best.score is not None
    return attempts, _Winner(VolumeResult(volume=volume, strategy=best.strategy, score=best.score,
                                          targets_met=best.outcome == "met_targets", quality=best.quality), msh)


def mesh_part(part: Path, name: str, workdir: Path, inputs: MeshInputs,
              log: Callable[[str], None] = print) -> MeshResult:
    """Mesh every volume of ``part`` and merge; raise :class:`MeshFailure` when no mesh can be produced.

    Unmet quality targets do not raise: the best mesh is still returned (``outputs.targets_met`` is False)
    so the user can see how close it came.
    """
    start = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    stem = Path(name).stem
    found = call("inspect", {"part": str(part)}, workdir, inputs.meshing.strategy_timeout_seconds)
    if not found.ok:
        if limited := limit_failure_of(name, found):
            raise limited
        if found.engine_broken:
            raise engine_unavailable(name, found)
        raise unreadable(name, found.problem)
    volumes: list[int] = found.data["volumes"]
    if not volumes:
        raise MeshFailure("MESH_NO_SOLIDS", f"{name}: the part has no solid to fill with a volume mesh "
                          f"({found.data['surfaces']} surface(s)); export closed solids from the CAD tool")
    diagonal = found.data["bbox"]["diagonal"]
    log(f"meshing {name}: {len(volumes)} volume(s), {len(inputs.meshing.strategies)} strategies, "
        f"targets {inputs.targets.model_dump(exclude_none=True) or 'none (first valid mesh)'}")
    workers = min(inputs.meshing.parallel_volumes, len(volumes))
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=workers) as pool:  # threads only wait: each candidate is a process
        try:
            futures = [pool.submit(search_volume, part, v, diagonal, inputs, workdir, log, cancel) for v in volumes]
            results = [future.result() for future in futures]
        except BaseException:  # SIGTERM (SystemExit) or an error: start nothing new, stop what runs, drain
            cancel.set()
            kill_all()
            raise
    attempts = [a for volume_attempts, _ in results for a in volume_attempts]
    failed = [v for v, (_, winner) in zip(volumes, results, strict=True) if winner is None]
    if failed:
        tried = "; ".join(f"volume {a.volume} {a.strategy}: {a.outcome} ({a.detail})" for a in attempts
                          if a.volume in failed)
        raise MeshFailure("MESH_NO_STRATEGY_SUCCEEDED", f"{name}: no strategy meshed volume(s) "
                          f"{', '.join(map(str, failed))} within the limits — {tried}; raise meshing.max_elements "
                          "or meshing.strategy_timeout_seconds, add coarser strategies, or remove tiny features")
    winners = [w for _, w in results if w is not None]
    msh = workdir / f"{stem}.msh"
    merged = call("merge", {"inputs": [str(w.msh) for w in winners], "volumes": [w.result.volume for w in winners],
                            "msh": str(msh), "name": stem}, workdir, inputs.meshing.strategy_timeout_seconds)
    if not merged.ok:
        raise MeshFailure("MESH_MERGE_FAILED", f"{name}: merging the volume meshes failed ({merged.problem})",
                          system_fault=True)
    total = merged.data["quality"]
    names = list(dict.fromkeys(w.result.strategy for w in winners))
    outputs = MeshOutputs(
        strategy=names[0] if len(names) == 1 else ",".join(names), score=score(total),
        targets_met=all(w.result.targets_met for w in winners),
        sicn_min=total["sicn_min"], sicn_avg=total["sicn_avg"], sicn_max=total["sicn_max"],
        gamma_min=total["gamma_min"], gamma_avg=total["gamma_avg"], total_elements=total["elements"],
        total_nodes=total["nodes"], volumes=[w.result for w in winners], attempts=attempts,
        execution_seconds=round(time.monotonic() - start, 3),
    )
    result_json = workdir / f"{stem}_result.json"
    result_json.write_text(json.dumps(_result_document(name, inputs, outputs), indent=2))
    quality_json = workdir / f"{stem}.quality.json"
    quality_json.write_text(json.dumps(_quality_document(name, inputs, outputs, total), indent=2))
    return MeshResult(outputs=outputs, msh=msh, result_json=result_json, quality_json=quality_json)


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
        "histograms": total["histograms"], "targets": inputs.targets.model_dump(), "targets_met": out.targets_met,
        "per_volume": [{"volume": v.volume, **v.quality.model_dump()} for v in out.volumes],
    }


def run(ctx: RunContext) -> None:
    item = ctx.envelope.file_with_role("primary-model")
    inputs = MeshInputs.model_validate(ctx.envelope.inputs)
    set_limits(ctx.envelope.context.limits)
    try:
        result = mesh_part(ctx.files["primary-model"], item.name, ctx.workdir / "mesh", inputs, ctx.log)
    except MeshFailure as exc:
        fail(ctx, exc)
        return
    out = result.outputs
    out.msh_uri = ctx.store_artifact(result.msh, result.msh.name, "mesh", "model/x-gmsh-msh").uri
    out.result_uri = ctx.store_artifact(result.result_json, result.result_json.name, "file", "application/json").uri
    out.quality_uri = ctx.store_artifact(result.quality_json, result.quality_json.name, "file",
                                         "application/json").uri
    ctx.output.outputs = out.model_dump(mode="json")
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
