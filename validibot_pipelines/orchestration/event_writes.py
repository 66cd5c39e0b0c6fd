"""What Dagster's SQLite event log writes per event, with its avoidable costs taken out (a mixin of
``CachedSqliteEventLogStorage``, ``event_log.py``).

What is written stays Dagster's: the same rows, the same JSON, the same files (``tests/test_event_log_writes.py``
compares them with Dagster's own). Measured on a grouped run's events stored again (~40 → ~19 ms per model on
/tmp, ext4), each item in its docstring:

* a new run's file is a copy of one Dagster made, not ``_initdb`` again (alembic reads every migration script);
* an asset's last materialization reuses the event's JSON, skips a schema read and updates before inserting;
* a check's event writes the index in one transaction;
* SQLite syncs its write-ahead log at checkpoints, not at every commit (``VALIDIBOT_SQLITE_SYNCHRONOUS``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._core.event_api import EventLogRecord
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import AssetKeyTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import ASSET_CHECK_EVENTS
from dagster._serdes import serialize_value
from dagster._time import datetime_from_timestamp
from sqlalchemy import create_engine, exc
from sqlalchemy.engine import Connection

SYNCHRONOUS_ENV = "VALIDIBOT_SQLITE_SYNCHRONOUS"
_PLACEHOLDER = EventLogEntry(error_info=None, level=0, user_message=f"placeholder {uuid.uuid4().hex}", run_id="",
                             timestamp=0.0)
_PLACEHOLDER_JSON = serialize_value(_PLACEHOLDER)


def sqlite_synchronous() -> str:
    """``VALIDIBOT_SQLITE_SYNCHRONOUS``: SQLite's ``synchronous`` for the event log's files, ``NORMAL`` by default.

    With Dagster's write-ahead log, ``FULL`` (SQLite's default) syncs the log to disk at every commit, and every
    stored event commits two or three times: ~0.5 ms each here, ~11 ms per model in a grouped run. ``NORMAL``
    syncs at checkpoints only. SQLite's documentation: a WAL database stays consistent either way, and a commit
    survives a crash of the process either way; with ``NORMAL`` the last commits can roll back after a power
    loss or an operating-system crash. The rest of the embedded default is no more durable than that (the
    local store writes without syncing), and production keeps Dagster's events in PostgreSQL
    (``deploy/dagster.prod.yaml``). ``FULL`` or ``EXTRA`` restore the sync at every commit."""
    value = os.environ.get(SYNCHRONOUS_ENV, "NORMAL").strip().upper() or "NORMAL"
    if value not in ("NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"{SYNCHRONOUS_ENV}={value!r} is not a setting for Dagster's SQLite event log: use NORMAL "
                         "(the default), FULL or EXTRA")
    return value


def _whole_sqlite_file(data: bytes) -> bool:
    """A SQLite file as long as its header says (page size × page count): not one cut short."""
    if len(data) < 100 or not data.startswith(b"SQLite format 3\x00"):
        return False
    page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    return len(data) == page_size * int.from_bytes(data[28:32], "big")


def _new_file(folder: str, prefix: str) -> str:
    """An empty new file in ``folder``, mode ``0666`` less the umask as SQLite creates its files (``mkstemp``
    would make it ``0600``: a webserver running as another user could not read the runs)."""
    path = os.path.join(folder, f"{prefix}{uuid.uuid4().hex}.tmp")
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return path


@functools.cache
def _schema_key() -> str:
    """Dagster's event-log schema: its version, the tables' DDL and its migrations' names, hashed."""
    from dagster._core.storage import event_log
    from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
    from dagster.version import __version__
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    parts = [__version__]
    for table in SqlEventLogStorageMetadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)))
        parts += sorted(str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)
    versions = Path(event_log.__file__).parents[1] / "alembic" / "versions"
    parts += sorted(p.name for p in versions.glob("*.py")) if versions.is_dir() else []
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class EventWrites:
    """The per-event write path of ``CachedSqliteEventLogStorage`` (methods of Dagster's it overrides)."""

    def _init_writes(self) -> None:
        self._asset_key_index_cols = False
        self._serialized = threading.local()  # the last event _event_to_row serialized, with its JSON
        self._index_scope = threading.local()  # the open index transaction of _one_index_transaction
        self._template_bytes: bytes | None = None  # _template's, once read or made

    def store_event(self, event: EventLogEntry) -> None:
        """Dagster's; a check's event writes the index in one transaction instead of two.

        Dagster stores a check evaluation (or its plan) in the index twice: the event's mirrored row in one
        connection, then the check's execution row in another, each a commit (an fsync of the write-ahead
        log). In ``_one_index_transaction`` every index connection of the event is the same transaction, so
        one commit (also when the event fails: what was written stays, as Dagster's first commit kept it). Only
        check events: for them Dagster's ``store_event``
        writes the run's file first and then only the index, so the index transaction (which holds
        ``_db_lock``) never waits for another connection of this storage."""
        if not (event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS):
            super().store_event(event)
            return
        with self._one_index_transaction():
            super().store_event(event)

    @contextmanager
    def _one_index_transaction(self) -> Iterator[None]:
        """The event's index connections as one transaction, committed even when the event failed.

        Dagster's two transactions leave the first one's row when the second fails (or raises after its write,
        as its check of a planned execution does), so this commits what was written before re-raising: a
        failed statement itself is undone by SQLite, and in each of Dagster's index blocks for these events the
        statement that can fail comes first or alone."""
        scope = self._index_scope
        stack = contextlib.ExitStack()
        scope.stack, scope.conn = stack, None
        try:
            yield
        finally:
            scope.stack = scope.conn = None
            stack.close()  # the open index connection's transaction commits

    def _new_run_file(self, shard: str) -> bool:
        """Create a new run's file as a copy of a new run file Dagster made; ``False`` if it exists already.

        Dagster's ``_initdb`` of a new file creates the tables, then asks alembic for the head revision twice
        (to compare and to stamp it), and alembic reads every migration script to answer: ~70 ms per run,
        ~3 ms per model in a grouped run of 25. The copy is what ``_initdb`` wrote (tables, WAL mode, the
        stamp), made once per schema under the instance's event-log folder (``_template``). The file appears
        whole or not at all (``os.link`` of a finished copy, which fails if the file exists), with the mode
        SQLite would give it (``0666`` less the umask); anything unexpected falls back to Dagster's
        ``_initdb``, which also handles a file another process is creating."""
        path = self.path_for_shard(shard)
        if os.path.exists(path):
            return False
        try:
            template = self._template()
            tmp = _new_file(os.path.dirname(path), ".new-run-")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(template)
                os.link(tmp, path)
            finally:
                os.unlink(tmp)
        except OSError:  # the file exists (another process), or links are not supported here
            return False
        return True

    def _template(self) -> bytes:
        """A new run file as Dagster's ``_initdb`` writes it, kept as ``.run-file-<schema key>.sqlite``: the key
        (``_schema_key``) changes with Dagster's tables and migrations, so another build of Dagster never
        copies a template an older one made. Read (or made) once per storage, not for every new run."""
        if self._template_bytes is not None:
            return self._template_bytes
        path = os.path.join(self._base_dir, f".run-file-{_schema_key()}.sqlite")
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as fh:
            data = fh.read()
            if _whole_sqlite_file(data):
                self._template_bytes = data
                return data
        tmp = _new_file(self._base_dir, ".run-file-")
        try:
            engine = create_engine(f"sqlite:///{tmp}")
            try:
                self._initdb(engine)
            finally:
                engine.dispose()  # the last close checkpoints the write-ahead log into the file
            with sqlite3.connect(tmp) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            with open(tmp, "rb") as fh:
                data = fh.read()
            os.replace(tmp, path)
            self._template_bytes = data
        finally:
            for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)
        return data

    def _event_to_row(self, event: EventLogEntry) -> dict[str, Any]:
        row = super()._event_to_row(event)
        self._serialized.event, self._serialized.json = event, row["event"]
        return row

    def _store_asset_event(self, conn: Connection, event: EventLogEntry, event_id: int) -> None:
        """Dagster's, with three costs taken out (~1 ms of a materialization's ~3.4 ms, measured):

        * the asset row's last materialization is an ``EventLogRecord`` holding the event, which Dagster
          serialises again although ``_event_to_row`` has just serialised the same event for its row: the
          record's JSON is built around that string (``_record_json``; a test checks it equals Dagster's);
        * Dagster asks SQLite for the asset table's columns on every asset event (a schema read), to learn
          whether a migration added ``last_materialization_timestamp``; once there it stays, so it is kept;
        * Dagster inserts first and updates on the ``IntegrityError`` — after an asset's first event, every
          event raised and built that error. Here the update goes first and the insert only when no row
          exists. The transaction has already written to this file (the event's own row, just before), so it
          holds SQLite's write lock and nobody can insert the row in between; the error is still handled."""
        dagster_event = event.dagster_event
        if not (dagster_event and dagster_event.asset_key):
            return
        if not self._asset_key_index_cols:
            self._asset_key_index_cols = self._has_asset_key_index_cols_on_connection(conn)
        if dagster_event.is_step_materialization:
            values: dict[str, Any] = {"last_materialization": self._record_json(event, event_id),
                                      "last_run_id": event.run_id}
            if self._asset_key_index_cols:
                values["last_materialization_timestamp"] = datetime_from_timestamp(event.timestamp)
        else:
            values = self._get_asset_entry_values(event, event_id, self._asset_key_index_cols)
        if not values:
            return
        key = dagster_event.asset_key.to_string()
        update = AssetKeyTable.update().values(**values).where(AssetKeyTable.c.asset_key == key)
        if conn.execute(update).rowcount:
            return
        try:
            conn.execute(AssetKeyTable.insert().values(asset_key=key, **values))
        except exc.IntegrityError:
            conn.execute(update)

    def _record_json(self, event: EventLogEntry, event_id: int) -> str:
        """``serialize_value(EventLogRecord(event_id, event))``, reusing the event's JSON from its row.

        Serialising a record is JSON of its fields, each serialised as it would be alone: so the record is
        serialised around a small placeholder entry, and the placeholder's JSON replaced by the event's."""
        last = self._serialized
        if getattr(last, "event", None) is not event:
            return serialize_value(EventLogRecord(storage_id=event_id, event_log_entry=event))
        shell = serialize_value(EventLogRecord(storage_id=event_id, event_log_entry=_PLACEHOLDER))
        return shell.replace(_PLACEHOLDER_JSON, last.json, 1)
