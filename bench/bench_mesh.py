"""Benchmark: the project's meshing wall time against plain Gmsh meshing the same part with the same algorithm.

    .venv/bin/python bench/bench_mesh.py [REPEATS] [BATCH_COPIES]

For each sample part (generated with Gmsh's OpenCASCADE kernel) and the quality target ``sicn_min >= 0.35``,
all measured in the same run:

* plain gmsh: ``initialize``, import the STEP file, the chosen strategy's options, ``generate(3)``, write the
  ``.msh`` — in this (warm) process, and in a fresh ``python`` process (interpreter and ``import gmsh`` too);
* early stop: the project's default strategy list, stopping at the first candidate that meets the target;
* best single: only the strategy the search ended up choosing (the same algorithm as plain gmsh);
* exhaustive: every strategy in the list (``early_stop: false``), for scale;

each through :func:`~validibot_pipelines.validators.mesh.worker.volume.mesh_part` cold (a fresh sandbox per
part) and warm (inside a worker lane, :func:`validibot_pipelines.runtime.sandbox.warm.lane`, as a batch worker
runs it; the lane's first run, which starts the warm sandbox, is left out). Then the batch path end to end:
BATCH_COPIES copies of every part (default 3) meshed through one local batch worker launch
(``LocalProcessLauncher.launch_batch``: one worker process, ``runtime/batch.py`` lanes, warm sandboxes).

Prints median wall times and the ratios to plain gmsh: each repeat of a pipeline run is paired with a plain
gmsh run just before it (in-process; for the cold path also in a fresh python process) and the median of those
ratios is printed, which keeps the ratio fair on a machine whose load changes during the run. REPEATS runs each
(default 3).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 0.35
PARTS = ("cylinder_with_hole", "two_volume_assembly")
SPEC = f"quality: {{sicn_min: {TARGET}}}\n"

PLAIN = """
import math, sys
import gmsh

def plain(part, msh, algorithm_2d, algorithm_3d, size_factor, optimize_netgen):
    gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", 1)
        gmsh.model.occ.importShapes(part)
        gmsh.model.occ.synchronize()
        xmin, ymin, zmin, xmax, ymax, zmax = gmsh.model.getBoundingBox(-1, -1)
        size = math.dist((xmin, ymin, zmin), (xmax, ymax, zmax)) * size_factor
        gmsh.option.setNumber("Mesh.Algorithm", algorithm_2d)
        gmsh.option.setNumber("Mesh.Algorithm3D", algorithm_3d)
        gmsh.option.setNumber("Mesh.MeshSizeMax", size)
        gmsh.option.setNumber("Mesh.MeshSizeMin", size / 10)
        gmsh.option.setNumber("Mesh.Optimize", 1)
        gmsh.option.setNumber("Mesh.OptimizeNetgen", 1 if optimize_netgen else 0)
        gmsh.model.mesh.generate(3)
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        gmsh.write(msh)
    finally:
        gmsh.finalize()

if __name__ == "__main__":
    plain(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6] == "1")
"""


class Plain:
    """Plain gmsh meshing ``part`` with ``strategy``'s algorithm and options, in this process (warm) or in a
    fresh python process."""

    def __init__(self, part: Path, strategy, workdir: Path) -> None:  # noqa: ANN001
        self.namespace: dict = {}
        exec(compile(PLAIN, "plain_gmsh", "exec"), self.namespace)  # noqa: S102 - the benchmark's own script
        self.script = workdir / "plain_gmsh.py"
        self.script.write_text(PLAIN)
        self.args = [str(part), str(workdir / "plain.msh"), str(strategy.algorithm_2d), str(strategy.algorithm_3d),
                     str(strategy.size_factor), "1" if strategy.optimize_netgen else "0"]
        self.inside()  # warm-up

    def inside(self) -> float:
        a = self.args
        start = time.perf_counter()
        self.namespace["plain"](a[0], a[1], int(a[2]), int(a[3]), float(a[4]), a[5] == "1")
        return time.perf_counter() - start

    def fresh(self) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, str(self.script), *self.args], check=True, timeout=300)
        return time.perf_counter() - start


def _time(part: Path, inputs, workdir: Path, repeats: int, plain: Plain | None = None,  # noqa: ANN001
          fresh: bool = False):  # noqa: ANN202
    """Median seconds of ``mesh_part``, the median ratio to plain gmsh run right before each repeat (in this
    process, and with ``fresh`` also in a fresh python process: pairs keep the ratio fair on a loaded
    machine), and the last result."""
    from validibot_pipelines.validators.mesh.worker.volume import mesh_part

    times, ratios, fresh_ratios, result = [], [], [], None
    for i in range(repeats):
        reference = plain.inside() if plain else None
        reference_fresh = plain.fresh() if plain and fresh else None
        start = time.perf_counter()
        result = mesh_part(part, part.name, workdir / f"run{time.monotonic_ns()}-{i}", inputs, log=lambda _m: None)
        times.append(time.perf_counter() - start)
        if reference:
            ratios.append(times[-1] / reference)
        if reference_fresh:
            fresh_ratios.append(times[-1] / reference_fresh)
    median = statistics.median
    return (median(times), median(ratios) if ratios else None, median(fresh_ratios) if fresh_ratios else None,
            result)


def _time_warm(part: Path, inputs, workdir: Path, repeats: int, plain: Plain):  # noqa: ANN001, ANN202
    from validibot_pipelines.runtime.sandbox import warm

    with warm.lane():
        _time(part, inputs, workdir, 1)  # starts the lane's warm sandbox
        return _time(part, inputs, workdir, repeats, plain)


def _batch(parts: dict[str, Path], copies: int, root: Path) -> tuple[float, int, list[str]]:
    """Seconds for ``copies`` of every part meshed through one local batch worker launch; (seconds, parts,
    statuses)."""
    from validibot_pipelines.orchestration.batching import together
    from validibot_pipelines.orchestration.models import intake
    from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
    from validibot_pipelines.validators.mesh import launch

    store = (root / "batch-store").as_uri()
    records = []
    for name, part in parts.items():
        for i in range(copies):
            copy = root / "batch-parts" / f"{name}-{i}.step"
            copy.parent.mkdir(parents=True, exist_ok=True)
            head, rest = part.read_bytes().split(b"\n", 1)
            copy.write_bytes(head + f"\n/* copy {i} */\n".encode() + rest)  # distinct bytes: distinct models
            spec = copy.with_name(copy.name + ".validation.yaml")
            spec.write_text(SPEC)
            records.append(intake(copy.as_uri(), store_uri=store, spec_uri=spec.as_uri(),
                                  model_name=f"bench/{copy.name}"))
    start = time.perf_counter()
    results = together(records, lambda r, b: launch.mesh(r, store_uri=store, backend=b,
                                                         attempt=f"b{time.monotonic_ns()}"),
                       LocalSubprocessBackend())
    seconds = time.perf_counter() - start
    return seconds, len(records), [out.status.value for out, _ in results]


def main(repeats: int = 3, copies: int = 3) -> None:
    from bytecode import compile_package

    compile_package()  # as a wheel install would (bench/bytecode.py)
    from validibot_pipelines.validators.mesh.envelopes import (
        DEFAULT_STRATEGIES,
        MeshingOptions,
        MeshInputs,
        QualityTargets,
    )
    from validibot_pipelines.validators.mesh.samples import make_part

    targets = QualityTargets(sicn_min=TARGET)
    plain_times = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"target sicn_min >= {TARGET}; {len(DEFAULT_STRATEGIES)} default strategies; {repeats} runs each; "
              "medians; each ratio is the median of (pipeline run / plain gmsh run just before it)")
        parts = {}
        for name in PARTS:
            part = parts[name] = make_part(name, root / "parts")
            _, _, _, chosen = _time(part, MeshInputs(targets=targets), root, 1)  # which strategy wins (warm-up)
            winners = {v.strategy for v in chosen.outputs.volumes}
            best = [s for s in DEFAULT_STRATEGIES if s.name in winners]
            plain = Plain(part, best[0], root)
            only = MeshInputs(targets=targets, meshing=MeshingOptions(strategies=best))
            exhaustive = MeshInputs(targets=targets, meshing=MeshingOptions(early_stop=False))
            rows = [("cold, best single strategy", *_time(part, only, root, repeats, plain, fresh=True)),
                    ("cold, early stop", *_time(part, MeshInputs(targets=targets), root, repeats, plain, fresh=True)),
                    ("cold, exhaustive, no stop", *_time(part, exhaustive, root, repeats, plain, fresh=True)),
                    ("warm lane, best single strategy", *_time_warm(part, only, root, repeats, plain)),
                    ("warm lane, early stop", *_time_warm(part, MeshInputs(targets=targets), root, repeats, plain))]
            by_label = {label: result for label, _, _, _, result in rows}
            assert by_label["cold, best single strategy"].outputs.total_elements == chosen.outputs.total_elements
            assert by_label["warm lane, early stop"].outputs.model_dump(exclude={"attempts", "execution_seconds"}) \
                == chosen.outputs.model_dump(exclude={"attempts", "execution_seconds"})  # warm or cold: the same
            inside = statistics.median(plain.inside() for _ in range(repeats))
            fresh = statistics.median(plain.fresh() for _ in range(repeats))
            plain_times.append(inside)
            tried = sum(a.outcome != "skipped" for a in chosen.outputs.attempts)
            print(f"\n{name}.step: {len(chosen.outputs.volumes)} volume(s), chosen {chosen.outputs.strategy} "
                  f"({chosen.outputs.total_elements} elements, SICN min {chosen.outputs.sicn_min:.3f}), "
                  f"{tried} candidates tried with early stop")
            print(f"  plain gmsh, {best[0].name}, in-process:      {inside:7.3f} s")
            print(f"  plain gmsh, {best[0].name}, fresh python:    {fresh:7.3f} s")
            for label, seconds, ratio, fresh_ratio, _ in rows:
                print(f"  {label + ':':34s} {seconds:7.3f} s  = {ratio:5.1f}x plain in-process"
                      + (f", {fresh_ratio:4.1f}x plain fresh python" if fresh_ratio else ""))
        if copies:
            seconds, count, statuses = _batch(parts, copies, root)
            per_plain = statistics.mean(plain_times)
            print(f"\nbatch: {count} parts ({copies} copies of each) through one local batch worker launch "
                  f"(statuses {sorted(set(statuses))}): {seconds:.3f} s, {seconds / count:.3f} s per part "
                  f"= {seconds / count / per_plain:.1f}x plain gmsh in-process per part (early stop; worker and "
                  "warm sandbox start-up included)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
