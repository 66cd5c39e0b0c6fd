"""What ``CachedSqliteEventLogStorage`` writes per event is what Dagster's SQLite event log writes: an asset's
last materialization, a new run's file, a check's rows in one transaction, and SQLite's sync setting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance
from dagster._core.event_api import EventLogRecord
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._serdes import serialize_value
from sqlalchemy import event as sqlalchemy_event

from tests.test_event_log import _home, _validate
from validibot_pipelines.orchestration.event_writes import SYNCHRONOUS_ENV, _schema_key, sqlite_synchronous


def _events(instance: DagsterInstance, kind: str) -> list:
    run = instance.get_runs(limit=1)[0]
    return [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event_type.value == kind]


def test_an_assets_last_materialization_is_stored_as_dagster_serialises_it(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu", "bb.fmu"])
        record = instance.fetch_materializations(AssetKey("scored"), limit=1).records[0]
        with sqlite3.connect(home / "history" / "runs" / "index.db") as db:
            stored, last_run = db.execute("SELECT last_materialization, last_run_id FROM asset_keys").fetchone()
        assert stored == serialize_value(EventLogRecord(storage_id=record.storage_id,
                                                        event_log_entry=record.event_log_entry))
        assert last_run == record.run_id and record.partition_key == "bb.fmu"  # updated by the second run

        storage = instance.event_log_storage  # any event's record JSON is Dagster's, byte for byte
        entry = record.event_log_entry._replace(user_message='quotes " and \\ and ünïcode and {"__class__": 1}')
        storage._event_to_row(entry)
        assert storage._record_json(entry, 42) == serialize_value(EventLogRecord(storage_id=42, event_log_entry=entry))
        other = entry._replace(user_message="not the one serialised last")
        assert storage._record_json(other, 43) == serialize_value(EventLogRecord(storage_id=43, event_log_entry=other))


def test_an_asset_whose_row_was_wiped_gets_it_again(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        instance.wipe_assets([AssetKey("scored")])
        assert instance.get_latest_materialization_event(AssetKey("scored")) is None
        _validate(instance, ["cc.fmu"])  # the update finds no row: inserted
        latest = instance.get_latest_materialization_event(AssetKey("scored"))
        assert latest is not None and latest.dagster_event.partition == "cc.fmu"


def _schema(path: Path) -> tuple:
    with sqlite3.connect(path) as db:
        return (sorted(db.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=str),
                db.execute("SELECT version_num FROM alembic_version").fetchall(),
                db.execute("PRAGMA journal_mode").fetchone())


def test_a_new_runs_file_is_the_one_dagster_makes(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        run = instance.get_runs(limit=1)[0]
        ours = Path(instance.event_log_storage.path_for_shard(run.run_id))
        runs = ours.parent
        assert (runs / f".run-file-{_schema_key()}.sqlite").is_file()  # not a *.db: Dagster globs those
        assert sorted(p.name for p in runs.glob("*.db")) == sorted(["index.db", ours.name])
        plain = SqliteEventLogStorage(str(tmp_path / "plain"))
        plain.store_event(instance.all_logs(run.run_id)[0])  # Dagster's own _initdb makes this run's file
        theirs = Path(plain.path_for_shard(run.run_id))
        plain.dispose()
        assert _schema(ours) == _schema(theirs)
        assert _schema(ours)[2] == ("wal",)

        before = ours.read_bytes()  # an existing file is never replaced by the copy
        assert instance.event_log_storage._new_run_file(run.run_id) is False
        assert ours.read_bytes() == before


def test_a_check_evaluation_commits_the_index_once(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        storage = instance.event_log_storage
        evaluation = _events(instance, "ASSET_CHECK_EVALUATION")[0]._replace(run_id="another-run")
        commits: list[int] = []
        sqlalchemy_event.listen(storage._engine("index"), "commit", lambda conn: commits.append(1))
        storage.store_event(evaluation)
        assert len(commits) == 1  # Dagster's two index connections (mirrored event, check execution): one commit
        history = storage.get_asset_check_execution_history(next(iter(_check_keys())), limit=10)
        assert "another-run" in {h.run_id for h in history}


@pytest.mark.parametrize("failure", ["before its write", "after its write"])
def test_a_check_whose_second_write_fails_leaves_what_dagster_leaves(tmp_path, monkeypatch, failure) -> None:  # noqa: ANN001
    """Dagster commits the mirrored row before the check's row; when the check's write fails (or Dagster raises
    after it, as for a doubly planned check), what was written stays: the same in the one transaction."""
    left = {}
    for name, config in (("ours", None), ("dagster", "telemetry:\n  enabled: false\n")):
        (tmp_path / name).mkdir()
        home = _home(tmp_path / name, monkeypatch, config)
        with DagsterInstance.from_config(str(home)) as instance:
            _validate(instance, ["a.fmu"])
            storage = instance.event_log_storage
            evaluation = _events(instance, "ASSET_CHECK_EVALUATION")[0]._replace(run_id="failing-run")
            write = storage.store_asset_check_event

            def broken(event, event_id, write=write) -> None:  # noqa: ANN001
                if failure == "after its write":
                    write(event, event_id)
                raise RuntimeError("the check's row failed")

            monkeypatch.setattr(storage, "store_asset_check_event", broken)
            with pytest.raises(RuntimeError):
                storage.store_event(evaluation)
            monkeypatch.undo()
            storage.store_event(evaluation._replace(run_id="next-run"))  # the next event is stored as usual
            with sqlite3.connect(home / "history" / "runs" / "index.db") as db:
                left[name] = (db.execute("SELECT run_id FROM event_logs WHERE run_id LIKE '%-run'").fetchall(),
                              db.execute("SELECT run_id, execution_status FROM asset_check_executions "
                                         "WHERE run_id LIKE '%-run'").fetchall())
    assert left["ours"] == left["dagster"]
    assert ("failing-run",) in left["ours"][0]


def _check_keys() -> set:
    from tests.test_event_log import scored

    return scored.check_keys


@pytest.mark.parametrize(("setting", "pragma"), [(None, 1), ("full", 2), ("EXTRA", 3), ("NORMAL", 1)])
def test_the_event_log_syncs_at_checkpoints_unless_told_otherwise(tmp_path, monkeypatch, setting, pragma) -> None:  # noqa: ANN001
    if setting is None:
        monkeypatch.delenv(SYNCHRONOUS_ENV, raising=False)
    else:
        monkeypatch.setenv(SYNCHRONOUS_ENV, setting)
    home = _home(tmp_path, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        storage = instance.event_log_storage
        run = instance.get_runs(limit=1)[0]
        for shard in ("index", run.run_id):
            with storage._connect(shard) as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == pragma


def test_an_unknown_sync_setting_is_named_with_its_fix(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(SYNCHRONOUS_ENV, "sometimes")
    with pytest.raises(ValueError, match=f"{SYNCHRONOUS_ENV}='SOMETIMES'.*use NORMAL"):
        sqlite_synchronous()


def test_a_broken_template_is_made_again(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A template cut short (a full disk, say) is not copied into runs: it is made again from Dagster's."""
    home = _home(tmp_path, monkeypatch)
    template = home / "history" / "runs" / f".run-file-{_schema_key()}.sqlite"
    template.parent.mkdir(parents=True)
    template.write_bytes(b"SQLite format 3\x00" + bytes(4096))  # the header promises pages it lacks
    with DagsterInstance.from_config(str(home)) as instance:
        _validate(instance, ["a.fmu"])
        run = instance.get_runs(limit=1)[0]
        assert len(instance.all_logs(run.run_id)) > 5
    assert _schema(template)[1] and _schema(template)[2] == ("wal",)  # Dagster's tables and stamp, made again


def test_new_run_files_and_the_template_get_the_mode_sqlite_gives(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """``0666`` less the umask, as SQLite (and so Dagster) creates them: a webserver running as another user
    reads the runs."""
    import os

    previous = os.umask(0o022)
    try:
        home = _home(tmp_path, monkeypatch)
        with DagsterInstance.from_config(str(home)) as instance:
            _validate(instance, ["a.fmu"])
            run = instance.get_runs(limit=1)[0]
            runs = Path(instance.event_log_storage.path_for_shard(run.run_id)).parent
        for name in (f"{run.run_id}.db", f".run-file-{_schema_key()}.sqlite", "index.db"):
            assert (runs / name).stat().st_mode & 0o777 == 0o644, name
        assert not list(runs.glob("*.tmp"))
    finally:
        os.umask(previous)


def test_the_template_is_named_for_dagsters_schema() -> None:
    """Another Dagster build (its tables or its migrations) names another template, so a template an older
    build left is never copied into a newer one's runs."""
    from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
    from sqlalchemy import Column, Integer, Table

    before = _schema_key.__wrapped__()
    table = Table("added_by_a_later_dagster", SqlEventLogStorageMetadata, Column("id", Integer))
    try:
        assert _schema_key.__wrapped__() != before
    finally:
        SqlEventLogStorageMetadata.remove(table)
    assert _schema_key.__wrapped__() == before == _schema_key()
