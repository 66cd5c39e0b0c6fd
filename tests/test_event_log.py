"""The embedded default's event log (``CachedSqliteEventLogStorage``): Dagster's SQLite files and schema, its
engines kept between connections, and everything Dagster reads from it still there — the history under a
plain Dagster instance, the UI's live view of a run, two processes writing at once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    DynamicPartitionsDefinition,
    Output,
    asset,
    materialize,
)

from validibot_pipelines.demo import INSTANCE_YAML
from validibot_pipelines.orchestration.event_log import (
    RUN_ENGINES_KEPT,
    CachedSqliteEventLogStorage,
    ValidibotInstance,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = DynamicPartitionsDefinition(name="models")


@asset(partitions_def=MODELS, check_specs=[AssetCheckSpec("positive", asset="scored")])
def scored(context) -> object:  # noqa: ANN001
    value = len(context.partition_key)
    yield Output(value, metadata={"value": value})
    yield AssetCheckResult(check_name="positive", passed=value > 0)


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str | None = None) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(config if config is not None else (ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _validate(instance: DagsterInstance, keys: list[str]) -> None:
    instance.add_dynamic_partitions("models", keys)
    for key in keys:
        assert materialize([scored], instance=instance, partition_key=key).success


@pytest.mark.parametrize("config", ["repository", "demo"])
def test_the_shipped_instance_configs_use_it_under_dagster_home(tmp_path, monkeypatch, config) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch, None if config == "repository" else INSTANCE_YAML)
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, CachedSqliteEventLogStorage)
        assert Path(storage._base_dir) == home / "history" / "runs"  # where Dagster's own SQLite event log would be


def test_history_reads_the_same_under_dagsters_own_sqlite_event_log(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu", "bb.fmu"])
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # back to Dagster's default storage
    with DagsterInstance.from_config(str(home)) as plain:
        assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
        records = plain.fetch_materializations(AssetKey("scored"), limit=10).records
        assert sorted(r.partition_key for r in records) == ["a.fmu", "bb.fmu"]
        assert {r.asset_materialization.metadata["value"].value for r in records} == {5, 6}
        checks = plain.event_log_storage.get_asset_check_execution_history(
            next(iter(scored.check_keys)), limit=10)
        assert len(checks) == 2 and all(c.status.value == "SUCCEEDED" for c in checks)


def test_engines_are_kept_and_run_files_stay_bounded(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        _validate(instance, ["a.fmu", "b.fmu", "c.fmu"])
        index = storage._engine("index")
        compiled = len(index._compiled_cache)
        _validate(instance, [f"m{i}.fmu" for i in range(RUN_ENGINES_KEPT + 4)])
        assert storage._engine("index") is index  # one engine, one compiled-statement cache
        assert len(index._compiled_cache) == compiled  # 20 more runs compiled no statement again
        assert index.pool.checkedin() >= 1  # index connections stay open between events (has_table may nest one)
        assert len(storage._engines) == RUN_ENGINES_KEPT  # recent runs' files; older ones' engines dropped
        assert all(engine.pool.checkedin() >= 1 for engine in storage._engines.values())  # each kept open


def test_a_wiped_instance_writes_its_next_runs_to_new_files(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        run = instance.get_runs(limit=1)[0]
        instance.wipe()  # deletes the run files this process holds connections to
        assert not Path(instance.event_log_storage.path_for_shard(run.run_id)).exists()
        instance.event_log_storage.store_event(_engine_event(run))
        assert len(instance.all_logs(run.run_id)) == 1  # on disk again, not in the deleted file
        assert Path(instance.event_log_storage.path_for_shard(run.run_id)).exists()


def _engine_event(run) -> object:  # noqa: ANN001
    from dagster import EventLogEntry
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData

    event = DagsterEvent(DagsterEventType.ENGINE_EVENT.value, run.job_name, message="after the wipe",
                         event_specific_data=EngineEventData())
    return EventLogEntry(error_info=None, level=20, user_message="after the wipe", run_id=run.run_id,
                         timestamp=time.time(), dagster_event=event, job_name=run.job_name)


def test_tables_found_are_remembered_and_missing_ones_asked_again(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        assert storage.has_table("asset_event_tags") and not storage.has_table("added_later")
        with sqlite3.connect(home / "history" / "runs" / "index.db") as db:  # as a later migration would
            db.execute("CREATE TABLE added_later (id INTEGER)")
        assert storage.has_table("added_later")
        class Unasked:
            def connect(self) -> None:
                pytest.fail("asked the file again")

        monkeypatch.setattr(storage, "_index_engine", Unasked())
        assert storage.has_table("asset_event_tags") and storage.has_table("added_later")
        monkeypatch.undo()  # the real engine back, for the instance's close


def _watching(instance: DagsterInstance, run_id: str, marker: str) -> tuple[threading.Event, list[str], object]:
    seen: list[str] = []
    arrived = threading.Event()

    def callback(entry, cursor) -> None:  # noqa: ANN001
        seen.append(entry.message)
        if marker in entry.message:
            arrived.set()

    instance.event_log_storage.watch(run_id, None, callback)
    return arrived, seen, callback


def test_the_live_view_of_a_run_still_sees_each_new_event(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The UI follows a running run through ``watch``, which waits for the run's ``.db`` to change: events
    kept in a pooled connection's write-ahead log must still wake it."""
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        run = instance.get_runs(limit=1)[0]
        arrived, seen, callback = _watching(instance, run.run_id, "from the other instance")
        try:
            with DagsterInstance.from_config(str(home)) as writer:  # another process's storage, in effect
                writer.report_engine_event("from the other instance", run)
                assert arrived.wait(15), seen[-5:]
                arrived.clear()
                writer.report_engine_event("from the other instance, again", run)  # same kept connection
                assert arrived.wait(15), seen[-5:]
        finally:
            instance.event_log_storage.end_watch(run.run_id, callback)


RUN_WRITER = textwrap.dedent("""
    import os, sys, time
    from dagster import DagsterInstance
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(sys.argv[1])
        instance.report_engine_event("step 0 from the run's process", run)
        deadline = time.time() + 60
        while not os.path.exists(sys.argv[2]) and time.time() < deadline:  # still running, connection kept
            time.sleep(0.05)
        instance.report_engine_event("step 1 from the run's process", run)
""")


def test_the_live_view_sees_events_while_the_runs_process_still_runs(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The run's process keeps its connection until it ends, when closing would checkpoint the file anyway:
    the watcher must see the first event while that process is still running."""
    home = _home(tmp_path, monkeypatch)
    go = tmp_path / "go"
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        run = instance.get_runs(limit=1)[0]
        first, seen, callback = _watching(instance, run.run_id, "step 0 from the run's process")
        proc = subprocess.Popen([sys.executable, "-c", RUN_WRITER, run.run_id, str(go)], stderr=subprocess.PIPE,
                                text=True)
        try:
            assert first.wait(30), seen[-5:]
            assert proc.poll() is None  # seen live, not at the writer's exit
            go.touch()
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-3000:]
            deadline = time.time() + 15
            while "step 1 from the run's process" not in seen and time.time() < deadline:
                time.sleep(0.1)
            assert "step 1 from the run's process" in seen, seen[-5:]
        finally:
            go.touch()
            proc.wait(timeout=60)
            instance.event_log_storage.end_watch(run.run_id, callback)


def test_reading_a_run_does_not_wake_its_watchers(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        run = instance.get_runs(limit=1)[0]
        path = Path(instance.event_log_storage.path_for_shard(run.run_id))
        os.utime(path, (1_000_000, 1_000_000))
        assert instance.all_logs(run.run_id)
        assert path.stat().st_mtime == 1_000_000  # a read touched nothing
        instance.report_engine_event("written", run)
        assert path.stat().st_mtime > 1_000_000  # a write did


WRITER = textwrap.dedent("""
    import sys
    from dagster import DagsterInstance
    sys.path.insert(0, {root!r})
    from tests.test_event_log import _validate
    with DagsterInstance.get() as instance:
        _validate(instance, [f"{{sys.argv[1]}}{{i}}.fmu" for i in range(15)])
""")


def test_two_processes_write_the_same_index_at_once(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("models", ["warm.fmu"])  # both writers find the index made
    script = WRITER.format(root=str(ROOT))
    writers = [subprocess.Popen([sys.executable, "-c", script, name], stderr=subprocess.PIPE, text=True)
               for name in ("x", "y")]
    deadline = time.time() + 240
    for proc in writers:
        _, err = proc.communicate(timeout=max(1, deadline - time.time()))
        assert proc.returncode == 0, err[-3000:]
    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(AssetKey("scored"), limit=100).records
        assert sorted(r.partition_key for r in records) == sorted(f"{n}{i}.fmu" for n in "xy" for i in range(15))


def test_any_instance_folder_gets_it_without_dagster_home(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """``dagster dev`` without DAGSTER_HOME uses a temporary folder with the project's dagster.yaml, and
    ``DagsterInstance.from_config(path)`` opens any folder: the storage follows the folder, as Dagster's does."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance, ValidibotInstance)
        assert Path(instance.event_log_storage._base_dir) == tmp_path / "history" / "runs"
        _validate(instance, ["a.fmu"])
    assert (tmp_path / "history" / "runs" / "index.db").exists()


def test_a_storage_block_still_replaces_it(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch, (ROOT / "dagster.yaml").read_text() + f"storage:\n  sqlite:\n"
                                                                          f"    base_dir: {tmp_path / 'other'}\n")
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert Path(instance.event_log_storage._base_dir) == tmp_path / "other" / "history" / "runs"


def test_a_forked_child_writes_through_its_own_connections(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A child forked from a process holding the storage (``multiprocessing``'s default on Linux) goes on
    storing events while the parent closes its kept connections (its LRU, ``dispose``): nothing is lost and both
    files stay sound. With the parent's connections shared, the parent's close checkpointed and deleted the
    write-ahead log under the child, and both files were corrupt."""
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        storage = instance.event_log_storage
        run = instance.get_runs(limit=1)[0]
        materialization = next(e for e in instance.all_logs(run.run_id)
                               if e.dagster_event and e.dagster_event_type.value == "ASSET_MATERIALIZATION")
        count = 150
        pid = os.fork()
        if pid == 0:  # the child: any failure shows as its exit code
            code = 0
            try:
                for i in range(count):
                    storage.store_event(materialization._replace(user_message=f"child {i}", timestamp=time.time()))
            except BaseException:  # noqa: BLE001
                code = 1
            os._exit(code)
        for i in range(count):
            storage.store_event(materialization._replace(user_message=f"parent {i}", timestamp=time.time()))
            if i % 10 == 0:
                storage._drop_engines(index=True)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    runs = home / "history" / "runs"
    for name in (f"{run.run_id}.db", "index.db"):
        with sqlite3.connect(runs / name) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), name
            for who in ("child", "parent"):
                stored = db.execute("SELECT count(*) FROM event_logs WHERE event LIKE ?", (f'%"{who} %',)).fetchone()
                assert stored == (count,), (name, who)


def test_a_run_file_another_process_wiped_is_opened_anew(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Dagster opened the file for every connection, so it saw another process's wipe; a kept connection would go
    on reading and writing the deleted file."""
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as kept, DagsterInstance.from_config(str(home)) as other:
        _validate(kept, ["a.fmu"])
        run = kept.get_runs(limit=1)[0]
        assert kept.all_logs(run.run_id)  # its connection to the run's file is kept now
        other.wipe()
        assert kept.all_logs(run.run_id) == []  # the file is gone: read as Dagster reads a missing run
        kept.event_log_storage.store_event(_engine_event(run))
        assert len(other.all_logs(run.run_id)) == 1  # written to the file on disk, where others read
