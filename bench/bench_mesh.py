"""Benchmark: the exhaustive strategy search with early stop vs the best single strategy, same part, same run.

    .venv/bin/python bench/bench_mesh.py [REPEATS]

For each sample part (generated with Gmsh's OpenCASCADE kernel) and the quality target ``sicn_min >= 0.35``:

* early stop: the default strategy list, stopping at the first candidate that meets the target;
* best single: only the strategy the search ended up choosing (what an oracle would have run directly);
* exhaustive: every strategy in the list (``early_stop: false``), for scale.

All three go through the same worker code (one Gmsh child process per candidate, plus inspect and merge).
Prints mean wall time per mesh and the ratios; REPEATS runs each (default 3).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.35
PARTS = ("cylinder_with_hole", "two_volume_assembly")


def _time(part: Path, inputs, workdir: Path, repeats: int):  # noqa: ANN001, ANN202
    from validibot_pipelines.validators.mesh.worker.volume import mesh_part

    times, result = [], None
    for i in range(repeats):
        start = time.perf_counter()
        result = mesh_part(part, part.name, workdir / f"run{time.monotonic_ns()}-{i}", inputs, log=lambda _m: None)
        times.append(time.perf_counter() - start)
    return statistics.mean(times), result


def main(repeats: int = 3) -> None:
    from validibot_pipelines.validators.mesh.envelopes import (
        DEFAULT_STRATEGIES,
        MeshingOptions,
        MeshInputs,
        QualityTargets,
    )
    from validibot_pipelines.validators.mesh.samples import make_part

    targets = QualityTargets(sicn_min=TARGET)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"target sicn_min >= {TARGET}; {len(DEFAULT_STRATEGIES)} default strategies; {repeats} runs each")
        for name in PARTS:
            part = make_part(name, root / "parts")
            early, chosen = _time(part, MeshInputs(targets=targets), root, repeats)
            winners = {v.strategy for v in chosen.outputs.volumes}
            tried = sum(a.outcome != "skipped" for a in chosen.outputs.attempts)
            best = [s for s in DEFAULT_STRATEGIES if s.name in winners]
            single, alone = _time(part, MeshInputs(targets=targets, meshing=MeshingOptions(strategies=best)), root,
                                  repeats)
            full, _ = _time(part, MeshInputs(targets=targets, meshing=MeshingOptions(early_stop=False)), root, repeats)
            assert alone.outputs.total_elements == chosen.outputs.total_elements  # the same mesh either way
            print(f"\n{name}.step: {len(chosen.outputs.volumes)} volume(s), chosen {chosen.outputs.strategy} "
                  f"({chosen.outputs.total_elements} elements, SICN min {chosen.outputs.sicn_min:.3f}), "
                  f"{tried} candidates tried with early stop")
            print(f"  exhaustive + early stop: {early:7.3f} s")
            print(f"  best single strategy:    {single:7.3f} s")
            print(f"  exhaustive, no stop:     {full:7.3f} s")
            print(f"  ratio early stop / best single:  {early / single:5.2f}x")
            print(f"  ratio no stop / early stop:      {full / early:5.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
