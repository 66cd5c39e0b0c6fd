"""Dagster's SQLite event log, with its SQLAlchemy engines kept between connections.

The embedded default stores Dagster's runs and events in SQLite files under ``$DAGSTER_HOME`` (the events under
``history/runs``). Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine for every connection and
disposes of it afterwards; an engine's compiled-statement cache lives and dies with it, so every insert and
query of every event is compiled from scratch, and every connection to the cross-run index file is opened, has
its schema read, and is closed — the last close of a WAL database also checkpoints it and deletes its
write-ahead log. A materialization stores into both files (its run's and the index), a check evaluation three
times. Measured here: ~6.7 → ~3 ms per stored event on /tmp (ext4), 12 of them per model in a grouped run;
``bench/bench_fmi.py``'s grouped runs and backfill 40–50% faster.

``CachedSqliteEventLogStorage`` changes where ``_connect`` gets its engine (and what it does after a write),
``has_table`` and ``wipe`` (both below); what each event writes is Dagster's, with the costs of the write path
taken out in ``event_writes.py`` (a new run's file, an asset's row, a check's transaction, SQLite's sync):

* one engine per file, kept (an LRU of recent run files; dropping one closes its connection), so statements
  compile once per process;
* each engine pools its connection (SQLAlchemy's default pool for a SQLite file), so a file is opened once per
  process, not once per event: Dagster's ``NullPool`` made every connection the file's last, and the last
  close of a WAL database checkpoints it (an fsync) and deletes its write-ahead log. SQLite's locking still
  serialises writers across processes (WAL mode, the busy timeout as Dagster sets it);
* the UI's live view of a run (``watch``) waits for the run's ``.db`` file to change, which that checkpoint used
  to do; with the connection kept, new events stay in the write-ahead log, so after a transaction that wrote to
  a run's file its modification time is set (``os.utime``), which the watcher sees as a modification
  (watchdog: inotify ``IN_ATTRIB``; the polling observer compares times). A read touches nothing, or a
  watcher's own read would wake it again;
* a kept connection must not outlive its file or cross a fork: a file another process deleted or replaced (a
  wipe) is opened anew (``_open`` compares the file's inode), and before the process forks every kept
  connection is closed (``os.register_at_fork``; ``_prepare_fork`` says why).

Same files and schema as Dagster's default, so an existing ``$DAGSTER_HOME`` keeps its history either way.
``dagster.yaml`` selects it through ``instance_class: ValidibotInstance``, whose only change to Dagster's
instance is that default storage: an instance class is how Dagster derives defaults from the instance's folder
(``config_defaults(base_dir)``), which a storage block in ``dagster.yaml`` cannot name (``dagster dev`` without
``DAGSTER_HOME`` uses a temporary folder; ``DagsterInstance.from_config(path)`` any folder). A ``storage:``
block (``postgres``, ``deploy/dagster.prod.yaml``) still replaces it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import Connection, Engine

from validibot_pipelines.orchestration.event_writes import EventWrites, sqlite_synchronous

RUN_ENGINES_KEPT = 16
_LIVE: weakref.WeakSet[CachedSqliteEventLogStorage] = weakref.WeakSet()  # every storage of this process


def _file_id(path: str) -> tuple[int, int]:
    """Which file ``path`` is now (device, inode); ``(0, 0)`` when there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return (0, 0)
    return (info.st_dev, info.st_ino)


_FORKING: list[CachedSqliteEventLogStorage] = []


def _before_fork() -> None:
    _FORKING[:] = list(_LIVE)
    for storage in _FORKING:
        storage._prepare_fork()


def _after_fork(child: bool) -> None:
    for storage in _FORKING:
        storage._after_fork(child=child)
    _FORKING.clear()


os.register_at_fork(before=_before_fork, after_in_parent=lambda: _after_fork(False),
                    after_in_child=lambda: _after_fork(True))


class CachedSqliteEventLogStorage(EventWrites, SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that keeps its engines (see the module docstring for why and what stays)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._index_engine: Engine | None = None
        self._index_engine_lock = threading.Lock()
        self._tables: set[str] = set()
        self._file_ids: dict[str, tuple[int, int]] = {}  # the file each kept engine has open: (device, inode)
        self._init_writes()
        super().__init__(base_dir, inst_data)
        _LIVE.add(self)

    def _prepare_fork(self) -> None:
        """Before this process forks: no SQLite connection may be open across a fork (SQLite's rule). A child
        that inherited the parent's open files, and SQLite's record of the locks it held, wrote into a
        write-ahead log the parent then checkpointed and deleted as its last user: both files were corrupt (a
        red-team reproduction; ``tests/test_event_log.py``). So every kept connection is closed, under the
        locks, which stay held until the fork is done; the engines (and their compiled statements) stay."""
        self._db_lock.acquire()
        self._index_engine_lock.acquire()
        for engine in self._kept_engines():
            engine.dispose()

    def _after_fork(self, *, child: bool) -> None:
        if child:  # the parent's locks, and its threads' state, are not the child's
            self._db_lock, self._index_engine_lock = threading.Lock(), threading.Lock()
            self._init_writes()
        else:
            self._index_engine_lock.release()
            self._db_lock.release()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> CachedSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        """This file's engine, made on first use (a run file's under ``_db_lock``)."""
        if shard == INDEX_SHARD_NAME:
            with self._index_engine_lock:  # has_table asks outside _db_lock
                return self._made_index_engine()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = self._engines[shard] = self._new_engine(shard)
        while len(self._engines) > RUN_ENGINES_KEPT:
            dropped, oldest = self._engines.popitem(last=False)
            self._file_ids.pop(dropped, None)
            oldest.dispose()
        return engine

    def _made_index_engine(self) -> Engine:
        """The index file's engine, made on first use (SQLAlchemy's pool for a SQLite file); with
        ``_index_engine_lock`` held."""
        if self._index_engine is None:
            self._index_engine = self._new_engine(INDEX_SHARD_NAME)
        return self._index_engine

    def _kept_engines(self) -> list[Engine]:
        return [*self._engines.values(), *([self._index_engine] if self._index_engine is not None else [])]

    def _new_engine(self, shard: str) -> Engine:
        engine = create_engine(self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        synchronous = sqlite_synchronous()
        sqlalchemy_event.listen(engine, "connect",
                                lambda dbapi_conn, _record: dbapi_conn.execute(f"PRAGMA synchronous={synchronous}"))
        return engine

    def has_table(self, table_name: str) -> bool:
        """Dagster's asks the index file with a new engine and connection each time, and it asks for nearly every
        event (``asset_event_tags``, ``asset_check_executions``, ``dynamic_partitions``): ~1 ms each. A table
        found is remembered (migrations add tables, never drop them); one not found is asked again."""
        if table_name in self._tables:
            return True
        with self._index_engine_lock:  # held while connected: no connection is open across a fork (_prepare_fork)
            engine = self._made_index_engine()
            with engine.connect() as conn:
                found = bool(engine.dialect.has_table(conn, table_name))
        if found:
            self._tables.add(table_name)
        return found

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:  # type: ignore[override]
        scope = self._index_scope
        if shard == INDEX_SHARD_NAME and getattr(scope, "stack", None) is not None:
            if scope.conn is None:
                scope.conn = scope.stack.enter_context(self._open(shard))
            yield scope.conn
            return
        with self._open(shard) as conn:
            yield conn

    @contextmanager
    def _open(self, shard: str) -> Iterator[Connection]:
        """A connection to this file in a transaction (Dagster's ``_connect``, with the kept engine)."""
        with self._db_lock:
            if shard in self._file_ids and self._file_ids[shard] != _file_id(self.path_for_shard(shard)):
                self._forget(shard)  # deleted (another process wiped it) or replaced since: open the new one
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                if shard == INDEX_SHARD_NAME or not self._new_run_file(shard):
                    self._initdb(engine)
                self._initialized_dbs.add(shard)
            if shard not in self._file_ids:
                self._file_ids[shard] = _file_id(self.path_for_shard(shard))
            with engine.connect() as conn:
                changes = conn.connection.dbapi_connection.total_changes
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and conn.connection.dbapi_connection.total_changes != changes:
                    with contextlib.suppress(FileNotFoundError):  # the run deleted meanwhile
                        os.utime(self.path_for_shard(shard))  # wakes watch() on this run (module docstring)

    def _forget(self, shard: str) -> None:
        """Drop this file's kept engine: Dagster's, which opened the file anew for every connection, would have
        seen another process delete it (a wipe) or put a new file in its place; a kept connection would go on
        reading and writing the old one."""
        if shard == INDEX_SHARD_NAME:
            with self._index_engine_lock:
                engine, self._index_engine = self._index_engine, None
            self._tables.clear()
            self._asset_key_index_cols = False
        else:
            engine = self._engines.pop(shard, None)
        if engine is not None:
            engine.dispose()
        self._file_ids.pop(shard, None)
        self._initialized_dbs.discard(shard)

    def _drop_engines(self, *, index: bool) -> None:
        """Close the kept run files' connections (and the index's too, with ``index``)."""
        with self._db_lock, self._index_engine_lock:
            engines = self._kept_engines() if index else list(self._engines.values())
            self._engines = OrderedDict()
            if index:
                self._index_engine = None
        self._file_ids.clear()
        for engine in engines:
            engine.dispose()

    def wipe(self) -> None:
        """Dagster's wipe deletes the run files: a kept connection to one would go on writing a deleted file."""
        self._drop_engines(index=False)
        super().wipe()

    def dispose(self) -> None:
        self._drop_engines(index=True)
        super().dispose()


class CachedSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, events, schedules under one folder) with the kept-engine event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # DagsterSqliteStorage.__init__, but for the event log's class: calling it would open Dagster's event
        # log as well, only to replace it.
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = CachedSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,  # type: ignore[override]
                          config_value: Mapping[str, Any]) -> CachedSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


class ValidibotInstance(DagsterInstance):
    """Dagster's instance; by default its storage is ``CachedSqliteStorage`` in the instance's folder."""

    @classmethod
    def config_schema(cls) -> Mapping[str, Any]:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        storage = ConfigurableClassData(__name__, CachedSqliteStorage.__name__, yaml.dump({"base_dir": base_dir}))
        return {**InstanceRef.config_defaults(base_dir), "storage": storage}
