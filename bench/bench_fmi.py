"""Benchmark: N FMUs through the whole pipeline vs a raw fmpy loop over the same files, in one run.

    .venv/bin/python bench/bench_fmi.py [N]

Two pipeline paths, both real: (1) as uploads arrive — upload sensor tick → dynamic partitions → one Dagster
run per FMU (execute_in_process on a SQLite instance) → intake, worker probe, worker simulation, CEL checks;
(2) batched — the same N partitions re-validated by one asset backfill whose BackfillPolicy puts all N in one
run (driven by the real backfill daemon iteration, see bench_backfill.py). The raw path is
``fmpy.simulate_fmu`` in this process with the same experiment. A third pair does the same for Model Exchange:
N variants of the ME-only test FMU (tests/fmi_cases/me_only_fmi2, CVode) raw vs one Dagster run each. Prints
wall times, per-validation overhead and the ratios. Not run in CI; numbers depend on the machine.
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
    from bench_backfill import make_home, run_backfill, timed_ticks  # same folder (on sys.path as a script)
    from dagster import DagsterInstance
    from fmpy import simulate_fmu

    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.resources import ValidibotSettings
    from validibot_pipelines.validators.fmi.samples.build import build_fmu

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
            outcomes, per_run = timed_ticks(defs, instance)
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
    me_raw, me_pipeline = model_exchange(n)
    print(f"Model Exchange (CVode):       raw {me_raw / n * 1000:7.1f} ms, pipeline {me_pipeline / n * 1000:7.1f} ms "
          f"per FMU, ratio {me_pipeline / me_raw:.1f}x")


def model_exchange(n: int) -> tuple[float, float]:
    """Raw fmpy vs the pipeline (one run per upload) on N byte-different copies of the ME-only test FMU."""
    import zipfile

    from bench_backfill import make_home, timed_ticks
    from dagster import DagsterInstance
    from fmpy import simulate_fmu

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.fmi_cases_build import build_case
    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.resources import ValidibotSettings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        landing = root / "landing"
        landing.mkdir()
        source = build_case("me_only_fmi2", root / "built")
        fmus = []
        for i in range(n):  # a different zip comment: different bytes, so each is its own upload
            fmu = landing / f"me{i}.fmu"
            with zipfile.ZipFile(source) as src, zipfile.ZipFile(fmu, "w") as dst:
                for item in src.infolist():
                    dst.writestr(item, src.read(item))
                dst.comment = f"bench copy {i}".encode()
            fmus.append(fmu)
        start = time.perf_counter()
        for fmu in fmus:
            simulate_fmu(str(fmu), fmi_type="ModelExchange", solver="CVode")
        raw = time.perf_counter() - start
        make_home(root)
        with DagsterInstance.get() as instance:
            defs = build_defs(ValidibotSettings(store_uri=(root / "store").as_uri(), landing_uri=landing.as_uri()))
            outcomes, pipeline = timed_ticks(defs, instance)
        assert sum(o.success for o in outcomes) == n, f"only {sum(o.success for o in outcomes)}/{n} ME runs passed"
    return raw, pipeline


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
