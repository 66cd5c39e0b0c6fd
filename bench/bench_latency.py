"""Benchmark: drop-to-verdict latency with ``dagster dev`` — a small FMU dropped in the landing zone until its
CEL assertions are evaluated (the ``cel_assertions`` check evaluation is recorded).

    .venv/bin/python bench/bench_latency.py [DROPS]

Real path: ``dagster dev`` (webserver and daemon) on the repo's workspace.yaml with a fresh DAGSTER_HOME and
the default sensor interval; each drop is a new FMU (a distinct variant), dropped only after the previous one's
verdict. Prints each latency, the median, and the parts: drop → run created (the sensor tick), run created →
verdict (the run). The raw fmpy time of the same simulation is printed for scale. Not run in CI.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = "simulation: {stop_time: 3, step_size: 0.01}\ninputs: {u: 3.0}\nassertions:\n" \
       "  - {name: settles, expr: 'o.y > 5.98 && o.y < 6.0'}\n"


def _verdict_time(instance, partition: str, deadline: float) -> tuple[float, float] | None:  # noqa: ANN001
    """(run created, cel_assertions evaluated) for the upload's run, as wall-clock timestamps."""
    from dagster import DagsterEventType, RunsFilter

    while time.time() < deadline:
        runs = instance.get_runs(RunsFilter(tags={"dagster/sensor_name": "upload_sensor"}), limit=20)
        for run in runs:
            if run.tags.get("dagster/partition") != partition:
                continue
            for record in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
                data = record.dagster_event.event_specific_data
                if data.check_name == "cel_assertions":
                    created = instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp()
                    return created, record.timestamp
        time.sleep(0.1)
    return None


def _timeline(instance, partition: str, dropped: float) -> None:  # noqa: ANN001
    """Where the run's time went: its engine and step events, seconds after the drop (``--timeline``)."""
    from dagster import RunsFilter

    run = instance.get_runs(RunsFilter(tags={"dagster/partition": partition}), limit=1)[0]
    for record in instance.all_logs(run.run_id):
        event = record.dagster_event
        if event is not None and event.event_type_value in (
                "RUN_ENQUEUED", "RUN_DEQUEUED", "RUN_STARTING", "RUN_START", "STEP_START", "STEP_SUCCESS",
                "ASSET_CHECK_EVALUATION", "RUN_SUCCESS"):
            print(f"    {record.timestamp - dropped:6.2f} s  {event.event_type_value} {event.step_key or ''}")


def main(drops: int = 5) -> None:
    from bytecode import compile_package

    compile_package()  # as a wheel install would (bench/bytecode.py)
    from dagster import DagsterInstance
    from fmpy import simulate_fmu

    from tests.dagster_server import dagster_server
    from validibot_pipelines.validators.fmi.samples.build import build_fmu

    # ignore_cleanup_errors: `dagster dev` child processes may still be writing its history as it stops
    with tempfile.TemporaryDirectory(prefix="validibot-latency-", ignore_cleanup_errors=True) as tmp:
        root = Path(tmp)
        home = root / "dagster_home"
        home.mkdir()
        shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "VALIDIBOT_HOME": str(root / "validibot")}
        landing = root / "validibot" / "landing"
        fmus = [build_fmu("first_order_lag", root / "fmus", variant=f"latency{i}") for i in range(drops + 1)]
        start = time.perf_counter()
        simulate_fmu(str(fmus[0]), stop_time=3, step_size=0.01, output_interval=0.01, start_values={"u": 3.0})
        raw = time.perf_counter() - start
        latencies, ticks, runs = [], [], []
        with dagster_server(["dagster", "dev"], env, root / "dagster-dev.log"):
            instance = DagsterInstance.from_config(str(home))
            landing.mkdir(parents=True, exist_ok=True)
            for i, fmu in enumerate(fmus):  # the first drop warms the code server and is not counted
                (landing / f"lat{i}.fmu.validation.yaml").write_text(SPEC)
                dropped = time.time()
                shutil.copyfile(fmu, landing / f"lat{i}.fmu")
                got = _verdict_time(instance, f"lat{i}.fmu", dropped + 300)
                if got is None:
                    raise SystemExit(f"no verdict for lat{i}.fmu within 300 s; see {root / 'dagster-dev.log'}")
                created, verdict = got
                if "--timeline" in sys.argv:
                    _timeline(instance, f"lat{i}.fmu", dropped)
                if i:
                    latencies.append(verdict - dropped)
                    ticks.append(created - dropped)
                    runs.append(verdict - created)
                note = "  [warm-up, not counted]" if not i else ""
                print(f"drop {i}: verdict after {verdict - dropped:6.2f} s (run created after "
                      f"{created - dropped:5.2f} s){note}")
    print(f"raw fmpy simulation of the same FMU: {raw * 1000:.0f} ms")
    print(f"drop-to-verdict with dagster dev: median {statistics.median(latencies):.2f} s over {len(latencies)} "
          f"drops (min {min(latencies):.2f}, max {max(latencies):.2f}); of it the sensor tick "
          f"{statistics.median(ticks):.2f} s, the run {statistics.median(runs):.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5)
