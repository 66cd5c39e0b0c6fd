"""Benchmark: N FMUs through the whole pipeline vs a raw fmpy loop over the same files, in one run.

    .venv/bin/python bench/bench_fmi.py [N]

Two pipeline paths, both real: (1) as uploads arrive — upload sensor tick → dynamic partitions → one Dagster
run per FMU (execute_in_process on a SQLite instance) → intake, worker probe, worker simulation, CEL checks;
(2) batched — the same N partitions re-validated by one asset backfill whose BackfillPolicy puts all N in one
run (driven by the real backfill daemon iteration, see bench_backfill.py). The raw path is
``fmpy.simulate_fmu`` in this process with the same experiment. Prints wall times, per-validation overhead
and the ratios. Not run in CI; numbers depend on the machine.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

SPEC = b"simulation: {stop_time: 3, step_size: 0.01}\ninputs: {u: 3.0}\nassertions:\n" \
       b"  - {name: settles, expr: 'o.y > 5.98 && o.y < 6.0'}\n"


def main(n: int = 20) -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    from bench_backfill import make_home, run_backfill  # same folder (on sys.path when run as a script)
    from dagster import DagsterInstance
    from fmpy import simulate_fmu

    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.local_runner import tick
    from validibot_pipelines.resources import ValidibotSettings
    from validibot_pipelines.samples.build import build_fmu

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        landing = root / "landing"
        fmus = [build_fmu("first_order_lag", landing, variant=f"bench{i}") for i in range(n)]
        for fmu in fmus:
            fmu.with_name(fmu.name + ".validation.yaml").write_bytes(SPEC)

        start = time.perf_counter()
        for fmu in fmus:
            result = simulate_fmu(str(fmu), start_time=0, stop_time=3, output_interval=0.01, step_size=0.01,
                                  start_values={"u": 3.0}, fmi_type="CoSimulation")
            assert 5.98 < result["y"][-1] < 6.0
        raw = time.perf_counter() - start

        make_home(root)
        store = (root / "store").as_uri()
        with DagsterInstance.get() as instance:
            defs = build_defs(ValidibotSettings(store_uri=store, landing_uri=landing.as_uri()))
            start = time.perf_counter()
            outcomes = []
            while batch := tick(defs, instance, log_level="ERROR"):
                outcomes.extend(batch)
            per_run = time.perf_counter() - start
            ok = sum(o.success and all(p for p, _ in o.checks.values()) for o in outcomes)
            assert ok == n, f"only {ok}/{n} validations passed"
            partitions = instance.get_dynamic_partitions("fmu_models")
            batched, runs, status = run_backfill(instance, root, store, landing.as_uri(), partitions, size=n)
            assert status == "COMPLETED_SUCCESS", status

    print(f"FMUs validated:               {n} (first_order_lag variants, 300 steps each)")
    print(f"raw fmpy loop:                {raw:8.3f} s  ({raw / n * 1000:7.1f} ms per FMU)")
    print(f"pipeline, one run per upload: {per_run:8.3f} s  ({per_run / n * 1000:7.1f} ms per FMU)")
    print(f"{f'pipeline, batched ({runs} run):':30s}{batched:8.3f} s  ({batched / n * 1000:7.1f} ms per FMU)")
    print(f"overhead per validation:      {(per_run - raw) / n * 1000:8.1f} ms one run each, "
          f"{(batched - raw) / n * 1000:.1f} ms batched")
    print(f"ratio pipeline / raw fmpy:    {per_run / raw:8.1f}x one run each, {batched / raw:.1f}x batched")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
