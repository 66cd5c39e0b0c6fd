"""Benchmark: N FMUs through the whole pipeline vs a raw fmpy loop over the same files, in one run.

    .venv/bin/python bench/bench_fmi.py [N] [--postgres]

Pipeline paths, all real (intake, sandboxed worker probe and simulation, CEL checks, Dagster's SQLite instance):

1. one run per upload — upload sensor ticks with ``VALIDIBOT_SENSOR_BATCH_SIZE=1`` (a run each);
2. grouped sensor runs — the same N uploads, the sensor's default groups (``VALIDIBOT_SENSOR_BATCH_SIZE``=25);
3. batched backfill — the N registered partitions re-validated by one asset backfill whose BackfillPolicy puts
   all N in one run (driven by the real backfill daemon iteration, see bench_backfill.py). Nothing changed since
   the grouped runs, so each model's verdict is replayed (no worker launch; ``VALIDIBOT_REPLAY_VERDICTS``, on by
   default), as a nightly re-validation of unchanged models goes; then the same backfill again with
   ``VALIDIBOT_REPLAY_VERDICTS=0``, every model probed and simulated anew, as after a validator change;
4. ``validibot validate`` of the N files in one call (a fresh process, as a model author's CI runs it).

In 2-4 each worker step is one worker launch for all of a run's models, their sandboxed children forked from a
warm parent. The raw path is ``fmpy.simulate_fmu`` in this process with the same experiment, run before the
first path and again after every path; each path's ratio is to the mean of the raw loops either side of it (the
machine's speed drifts within minutes). Prints wall times, the ratios, models per hour, and Dagster events per
model. A second part does Model Exchange
(CVode) one run per upload. Not run in CI; numbers depend on the machine.

``--postgres`` keeps Dagster's runs and events in a real PostgreSQL server (``tests/postgres.py``, fsync on, a
fresh database per instance) as ``deploy/dagster.prod.yaml`` does, instead of SQLite files.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

SPEC = b"simulation: {stop_time: 3, step_size: 0.01}\ninputs: {u: 3.0}\nassertions:\n" \
       b"  - {name: settles, expr: 'o.y > 5.98 && o.y < 6.0'}\n"


def _pipeline(root: Path, fmus: list[Path], batch_size: int, n: int) -> tuple[float, int, float, object]:
    """Sensor ticks (runs of ``batch_size`` uploads) on a fresh instance: seconds, runs, events per model."""
    from bench_backfill import make_home, timed_ticks
    from dagster import DagsterInstance

    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.resources import ValidibotSettings

    landing = root / "landing"
    landing.mkdir(parents=True)
    for fmu in fmus:
        (landing / fmu.name).write_bytes(fmu.read_bytes())
        (landing / (fmu.name + ".validation.yaml")).write_bytes(SPEC)
    make_home(root)
    os.environ["VALIDIBOT_SENSOR_BATCH_SIZE"] = str(batch_size)
    instance = DagsterInstance.get()
    defs = build_defs(ValidibotSettings(store_uri=(root / "store").as_uri(), landing_uri=landing.as_uri()))
    outcomes, seconds = timed_ticks(defs, instance)
    ok = sum(o.success and all(p for p, _ in o.checks.values()) for o in outcomes)
    assert ok == n, f"only {ok}/{n} validations passed"
    runs = {o.run_id for o in outcomes}
    events = sum(len(instance.all_logs(run_id)) for run_id in runs) / n
    return seconds, len(runs), events, (instance, defs, landing)


def main(n: int = 20) -> None:
    from bytecode import compile_package

    compile_package()  # as a wheel install would (bench/bytecode.py)
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    from bench_backfill import run_backfill
    from fmpy import simulate_fmu

    from validibot_pipelines.validators.fmi.samples.build import build_fmu

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fmus = [build_fmu("first_order_lag", root / "fmus", variant=f"bench{i}") for i in range(n)]
        for fmu in fmus:
            fmu.with_name(fmu.name + ".validation.yaml").write_bytes(SPEC)

        def raw_loop() -> float:
            start = time.perf_counter()
            for fmu in fmus:
                result = simulate_fmu(str(fmu), start_time=0, stop_time=3, output_interval=0.01, step_size=0.01,
                                      start_values={"u": 3.0}, fmi_type="CoSimulation")
                assert 5.98 < result["y"][-1] < 6.0
            return time.perf_counter() - start

        raws = [raw_loop()]  # again after every path: each path's ratio is to the raw loops either side of it

        # The CLI first, right after the raw loop: the Dagster paths below leave a code server shutting down for
        # up to a minute, which would share the two cores with the CLI's fresh process.
        home = root / "cli-home"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate", str(root / "fmus"),
                               "--json"], env={**os.environ, "VALIDIBOT_HOME": str(home)}, capture_output=True,
                              text=True)
        cli = time.perf_counter() - start
        assert proc.returncode == 0 and proc.stdout.count('"status":"success"') == n, proc.stderr[-2000:]
        raws.append(raw_loop())

        single, single_runs, single_events, _ = _pipeline(root / "single", fmus, 1, n)
        raws.append(raw_loop())
        grouped, grouped_runs, grouped_events, (instance, _defs, landing) = _pipeline(root / "grouped", fmus, 25, n)
        raws.append(raw_loop())
        partitions = instance.get_dynamic_partitions("fmu_models")
        batched, runs, status = run_backfill(instance, root / "grouped", (root / "grouped" / "store").as_uri(),
                                             landing.as_uri(), partitions, size=n)
        assert status == "COMPLETED_SUCCESS", status
        raws.append(raw_loop())
        # The same backfill with every model simulated again, as after a validator change: the one above finds
        # each model's inputs unchanged and replays its verdict (VALIDIBOT_REPLAY_VERDICTS, on by default).
        os.environ["VALIDIBOT_REPLAY_VERDICTS"] = "0"
        rerun, rerun_runs, status = run_backfill(instance, root / "grouped", (root / "grouped" / "store").as_uri(),
                                                 landing.as_uri(), partitions, size=n, title="bench re-run")
        del os.environ["VALIDIBOT_REPLAY_VERDICTS"]
        assert status == "COMPLETED_SUCCESS", status
        raws.append(raw_loop())

    # This machine's speed drifts by ±20% within minutes: a ratio to one raw loop at the start says as much
    # about that minute as about the pipeline. Each path is divided by the mean of the raw loops run just
    # before and just after it.
    print(f"FMUs validated:                 {n} (first_order_lag variants, 300 steps each)")
    print("raw fmpy loops:                 " + ", ".join(f"{r / n * 1000:.1f}" for r in raws) + " ms per FMU "
          "(before and after each path)")
    rows = [("validibot validate, one call", cli, None, 0),
            (f"one run per upload ({single_runs} runs)", single, single_events, 1),
            (f"grouped sensor runs ({grouped_runs} runs)", grouped, grouped_events, 2),
            (f"batched backfill ({runs} run)", batched, None, 3),
            (f"  the same, re-run ({rerun_runs} run)", rerun, None, 4)]
    for label, seconds, events, i in rows:
        raw = (raws[i] + raws[i + 1]) / 2
        per_hour = n / seconds * 3600
        extra = f", {events:.0f} Dagster events per model" if events is not None else ""
        print(f"{label:32s}{seconds:8.3f} s  {seconds / raw:6.1f}x raw ({raw / n * 1000:.1f} ms)  "
              f"{per_hour:9.0f} models/hour{extra}")
    me_raw, me_pipeline = model_exchange(n)
    print(f"Model Exchange (CVode):         raw {me_raw / n * 1000:7.1f} ms, pipeline {me_pipeline / n * 1000:7.1f} ms "
          f"per FMU (grouped sensor runs), ratio {me_pipeline / me_raw:.1f}x")


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
    args = [a for a in sys.argv[1:] if a != "--postgres"]
    count = int(args[0]) if args else 20
    if "--postgres" not in sys.argv:
        main(count)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.postgres import postgres_server

        with postgres_server("bench", fsync=True) as pg:
            os.environ["VALIDIBOT_BENCH_PG_PORT"] = pg["DAGSTER_PG_PORT"]
            print("Dagster storage: PostgreSQL (fsync on)")
            main(count)
