"""Benchmark: what the sandbox costs per launch — the same FMU simulation child, sandboxed and not, in one run.

    .venv/bin/python bench/bench_sandbox.py [N]

Three paths over the same sample FMU (first_order_lag, 300 steps), N times each, interleaved so machine noise
hits all alike: (1) raw fmpy in this process (the floor); (2) the simulation child
(``python -m validibot_pipelines.validators.fmi.worker.child``) started as a plain subprocess — what the worker did
before the sandbox; (3) the same child through :func:`~validibot_pipelines.runtime.sandbox.run_untrusted`
(bubblewrap namespaces, rlimits, pids cgroup, the /proc watcher, results read back through the safe reader).
Prints milliseconds per launch, the sandbox's added cost and the ratios. Not run in CI.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

CHILD = [sys.executable, "-m", "validibot_pipelines.validators.fmi.worker.child"]


def _request(folder: Path, fmu: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "request.json"
    path.write_text(json.dumps({"fmu": str(fmu), "start_time": 0, "stop_time": 3, "step_size": 0.01,
                                "start_values": {"u": 3.0}, "outputs": ["y"],
                                "result_path": str(folder / "result.npy")}))
    return path


def main(n: int = 20) -> None:
    from fmpy import simulate_fmu

    from validibot_pipelines.runtime.process import run_child
    from validibot_pipelines.runtime.sandbox import read_result, run_untrusted
    from validibot_pipelines.validators.fmi.samples.build import build_fmu

    times: dict[str, list[float]] = {"raw fmpy": [], "plain child": [], "sandboxed child": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fmu = build_fmu("first_order_lag", root / "inputs")
        for i in range(n):
            start = time.perf_counter()
            simulate_fmu(str(fmu), start_time=0, stop_time=3, step_size=0.01, output_interval=0.01,
                         start_values={"u": 3.0}, fmi_type="CoSimulation")
            times["raw fmpy"].append(time.perf_counter() - start)

            request = _request(root / f"plain{i}", fmu)
            start = time.perf_counter()
            plain = run_child([*CHILD, str(request)], timeout=60, cwd=request.parent)
            assert plain.returncode == 0 and json.loads((request.parent / "child.json").read_text())["ok"]
            times["plain child"].append(time.perf_counter() - start)

            request = _request(root / f"sandbox{i}", fmu)
            start = time.perf_counter()
            boxed = run_untrusted([*CHILD, str(request)], scratch=request.parent, timeout=60, readonly=[fmu])
            meta = json.loads(read_result(request.parent, request.parent / "child.json", 1 << 20))
            assert boxed.returncode == 0 and meta["ok"], boxed.stderr[-500:]
            times["sandboxed child"].append(time.perf_counter() - start)

    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"launches per path:            {n} (first_order_lag, 300 steps; medians)")
    for name, ms in med.items():
        print(f"{name + ':':30s}{ms:8.1f} ms")
    print(f"sandbox cost per launch:      {med['sandboxed child'] - med['plain child']:8.1f} ms "
          f"(sandboxed / plain child {med['sandboxed child'] / med['plain child']:.2f}x)")
    print(f"ratio sandboxed / raw fmpy:   {med['sandboxed child'] / med['raw fmpy']:8.1f}x "
          f"(plain child / raw fmpy {med['plain child'] / med['raw fmpy']:.1f}x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
