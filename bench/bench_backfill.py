"""Benchmark: a backfill over N registered FMUs with one model per run vs batches (BackfillPolicy.multi_run).

    .venv/bin/python bench/bench_backfill.py [N] [BATCH]

Real path both times: a Dagster asset backfill submitted to a SQLite instance, executed by the real backfill
daemon iteration (code location in a gRPC server; runs executed by the synchronous launcher with the default
multiprocess executor, one process per step, as in production). Only the batch size differs. Prints runs,
wall times and the ratio. Not run in CI; numbers depend on the machine.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]



SYNC_HOME_YAML = (
    "telemetry:\n  enabled: false\nrun_launcher:\n"
    "  module: dagster._core.launcher.sync_in_memory_run_launcher\n"
    "  class: SyncInMemoryRunLauncher\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
    "  class: DefaultRunCoordinator\n"
    # the embedded default's instance (dagster.yaml, validibot demo): its SQLite event log keeps its engines
    "instance_class:\n  module: validibot_pipelines.orchestration.event_log\n  class: ValidibotInstance\n")


def timed_ticks(defs, instance) -> tuple[list, float]:  # noqa: ANN001
    """Tick the upload sensor (running each requested partition) until a tick requests nothing; the outcomes
    and the wall time it took."""
    from validibot_pipelines.local_runner import tick

    start = time.perf_counter()
    outcomes = []
    while batch := tick(defs, instance, log_level="ERROR"):
        outcomes.extend(batch)
    return outcomes, time.perf_counter() - start


def landing_run_seconds(root: Path, landing: Path, expected: int) -> float:
    """Validate everything in ``landing`` through Dagster (fresh instance and store under ``root``); checks that
    ``expected`` validations passed and returns the wall time of the sensor ticks and their runs."""
    from dagster import instance_for_test

    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.resources import ValidibotSettings

    (root / "home").mkdir()
    with instance_for_test(temp_dir=str(root / "home")) as instance:
        defs = build_defs(ValidibotSettings(store_uri=(root / "store").as_uri(), landing_uri=landing.as_uri()))
        outcomes, seconds = timed_ticks(defs, instance)
    ok = sum(o.success and all(p for p, _ in o.checks.values()) for o in outcomes)
    assert ok == expected, f"only {ok}/{expected} validations passed"
    return seconds


def make_home(tmp: Path) -> Path:
    """A DAGSTER_HOME whose runs execute synchronously when the backfill daemon iteration launches them.

    SQLite storage under it by default; with ``VALIDIBOT_BENCH_PG_PORT`` set (``bench_fmi.py --postgres``), a
    fresh PostgreSQL database on that server instead, as production stores runs and events."""
    home = tmp / "home"
    home.mkdir()
    yaml = SYNC_HOME_YAML
    if port := os.environ.get("VALIDIBOT_BENCH_PG_PORT"):
        sys.path.insert(0, str(ROOT))
        from tests.postgres import create_database

        db_name = f"bench_{uuid.uuid4().hex[:12]}"
        create_database(port, db_name)
        yaml += ("storage:\n  postgres:\n    postgres_db:\n      hostname: 127.0.0.1\n      username: postgres\n"
                 f"      password: unused\n      db_name: {db_name}\n      port: {port}\n")
    (home / "dagster.yaml").write_text(yaml)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_backfill(instance, tmp: Path, store: str, landing: str, partitions: list[str], size: int,  # noqa: ANN001
                 group: str = "fmi", title: str = "bench batch") -> tuple[float, int, str]:
    """Submit a real asset backfill of ``group`` over ``partitions`` in batches of ``size`` and drive the
    backfill daemon's iteration until it ends; returns (seconds, runs, final status)."""
    from dagster import RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import PythonFileTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    from validibot_pipelines.operations.backfill import submit_backfill
    from validibot_pipelines.operations.staleness import group_asset_keys

    # one file per title: the in-process launcher keeps a loaded location module, settings and all
    location = tmp / f"location_{title.replace(' ', '_')}_{size}.py"
    location.write_text(
        "import os\n"
        f"os.environ['VALIDIBOT_BACKFILL_BATCH_SIZE'] = '{size}'\n"
        "from validibot_pipelines.definitions import build_defs\n"
        "from validibot_pipelines.resources import ValidibotSettings\n"
        f"defs = build_defs(ValidibotSettings(store_uri={store!r}, landing_uri={landing!r}))\n")
    target = PythonFileTarget(python_file=str(location), attribute="defs", working_directory=str(ROOT),
                              location_name=f"bench_{size}")
    with create_test_daemon_workspace_context(target, instance) as workspace:
        graph = workspace.create_request_context().asset_graph
        backfill_id = submit_backfill(instance, graph, group_asset_keys(graph, group), partitions,
                                      title=f"{title} {size}", trigger="bench")
        os.environ["VALIDIBOT_BACKFILL_BATCH_SIZE"] = str(size)  # the in-process run launcher loads it
        start = time.perf_counter()
        while instance.get_backfill(backfill_id).status == BulkActionStatus.REQUESTED:
            list(execute_backfill_iteration(workspace, logging.getLogger("bench")))
        seconds = time.perf_counter() - start
    runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
    return seconds, len(runs), instance.get_backfill(backfill_id).status.value


def main(n: int = 20, batch: int = 10) -> None:
    warnings.filterwarnings("ignore")
    logging.disable(logging.CRITICAL)
    from dagster import DagsterInstance

    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.local_runner import tick
    from validibot_pipelines.resources import ValidibotSettings
    from validibot_pipelines.storage import get_store, join_uri
    from validibot_pipelines.validators.fmi.samples.build import build_fmu

    with tempfile.TemporaryDirectory(prefix="validibot-bench-") as tmp_name:
        tmp = Path(tmp_name)
        make_home(tmp)
        store, landing = (tmp / "store").as_uri(), (tmp / "landing").as_uri()
        with DagsterInstance.get() as instance:
            defs = build_defs(ValidibotSettings(store_uri=store, landing_uri=landing))
            for i in range(n):
                path = build_fmu("first_order_lag", tmp / "fmus", variant=f"lag{i}")  # byte-distinct models
                get_store(landing).upload_file(path, join_uri(landing, path.name))
            while tick(defs, instance, log_level="ERROR"):  # register + validate once (not timed)
                pass
            partitions = instance.get_dynamic_partitions("fmu_models")
            results = {size: run_backfill(instance, tmp, store, landing, partitions, size) for size in (1, batch)}
            for size, (seconds, runs, status) in results.items():
                print(f"batch size {size:3d}: {runs:3d} runs, {seconds:7.2f} s for {n} models "
                      f"({seconds / n:.3f} s/model), backfill {status}")
            print(f"ratio one-model-per-run / batched: {results[1][0] / results[batch][0]:.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
