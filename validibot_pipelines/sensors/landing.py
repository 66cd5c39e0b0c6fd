"""Scan a landing zone for new uploads — plain logic, no Dagster objects, so it is easy to test.

The cursor is a high-water mark ``(updated_ns, uri)`` over the objects already handled, plus the objects
handled within a trailing *lookback window* below the mark (``VALIDIBOT_LANDING_LOOKBACK_SECONDS``, default
1 h). Each tick lists object metadata (no reads), then hashes and registers at most ``max_new`` objects —
and at most ``max_bytes`` of content — that are above the mark or inside the window but not yet handled,
oldest first; the rest wait for the next tick. Reads and partition registrations are therefore proportional
to new objects, not to the size of the bucket (the listing itself is metadata of every object; event
notifications would remove that, see docs/operations.md).

Why the window: an object can appear with a timestamp older than objects already handled — an S3 multipart
upload is stamped when it *started*, and a large upload can finish after a small one. On a local folder the
store reports the later of mtime and ctime, so ``mv`` / ``cp -p`` / ``rsync -a`` / ``tar x`` (old mtime, new
ctime) are seen as new. Re-announcing an object is harmless anyway: its run key (checksum + spec checksum)
is deduplicated by Dagster.

Why the scan never stops on one entry: the landing zone is written by users. On a local folder the listing is
``lstat`` only (:meth:`LocalStore.entries`): symlinks, FIFOs, sockets, devices and folders named like models are
reported once (as ``skipped``, with the fix) and never followed or opened; a file that cannot be read is
reported and the others go on; and a model still being written waits for a later tick (see
:func:`still_being_written`) instead of being registered as a half file.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from validibot_pipelines.orchestration.models import SPEC_SUFFIX, kind_of
from validibot_pipelines.orchestration.names import key_for_upload
from validibot_pipelines.orchestration.revalidate import spec_version
from validibot_pipelines.storage import get_store, leaf_name
from validibot_pipelines.storage.base import ObjectInfo, ObjectStore
from validibot_pipelines.storage.local import LocalStore, uri_to_path
from validibot_pipelines.validators.registry import all_suffixes, for_suffix, side_file_suffixes


@dataclass(frozen=True)
class Upload:
    """A new model upload to validate."""

    uri: str
    kind: str
    sha256: str
    spec_uri: str | None
    spec_sha256: str | None
    key: str = ""  # the model's partition key: its path below the landing root (orchestration/names.py)
    updated_ns: int = 0  # when the landing zone says the object last changed

    @property
    def version(self) -> str:
        """What a run of the model validates: its bytes and its spec (the sensor skips a version it has)."""
        return f"{self.sha256}:{spec_version(self.spec_sha256)}"

    @property
    def run_key(self) -> str:
        """One run per change of the model (bytes or spec) at its name: a tick retried after a crash, or the
        same object re-announced by the lookback window, dedupes; a later revert to earlier bytes runs again
        (the object changed since). Identical bytes re-uploaded are skipped before this (sensors/uploads.py)."""
        return f"{self.kind}:{self.key}:{self.version}:{self.updated_ns}"


def lookback_ns() -> int:
    return int(float(os.environ.get("VALIDIBOT_LANDING_LOOKBACK_SECONDS", "3600")) * 1e9)


@dataclass(frozen=True)
class Mark:
    updated_ns: int
    uri: str
    recent: dict[str, int] = field(default_factory=dict)  # uri -> updated_ns handled inside the lookback window

    def handled(self, uri: str, updated_ns: int) -> bool:
        if (updated_ns, uri) <= (self.updated_ns, self.uri):
            return updated_ns <= self.updated_ns - lookback_ns() or self.recent.get(uri) == updated_ns
        return False

    def advance(self, handled: list[ObjectInfo]) -> Mark:
        top = max([(self.updated_ns, self.uri), *((o.updated_ns, o.uri) for o in handled)])
        floor = top[0] - lookback_ns()
        recent = {u: t for u, t in self.recent.items() if t > floor}
        recent.update({o.uri: o.updated_ns for o in handled if o.updated_ns > floor})
        return Mark(top[0], top[1], recent)

    def dumps(self) -> str:
        return json.dumps({"updated_ns": self.updated_ns, "uri": self.uri, "recent": self.recent})

    @classmethod
    def loads(cls, cursor: str | None) -> Mark:
        if not cursor:
            return cls(-1, "")
        data = json.loads(cursor)
        recent = {str(k): int(v) for k, v in data.get("recent", {}).items()}
        return cls(int(data["updated_ns"]), str(data["uri"]), recent)


@dataclass
class ScanResult:
    uploads: list[Upload]
    skipped: list[str]  # entries no validator handles or that cannot be taken in, with the reason and the fix
    cursor: str
    remaining: int  # new objects left for later ticks
    pending: int = 0  # models still being written (see still_being_written); they wait for a later tick


def scan(landing_uri: str, cursor: str | None, max_new: int = 50, max_bytes: int = 2 * 1024**3,
         log: Callable[[str], None] = lambda _msg: None) -> ScanResult:
    """One bounded pass over the landing zone; one bad entry is reported and never stops the others."""
    store = get_store(landing_uri)
    mark = Mark.loads(cursor)
    objects, bad = _listing(store, landing_uri)
    listed = {o.uri for o in objects}
    skipped = [problem for info, problem in bad if not mark.handled(info.uri, info.updated_ns)]
    noted = [info for info, _ in bad if not mark.handled(info.uri, info.updated_ns)]
    fresh = sorted((o for o in objects if not mark.handled(o.uri, o.updated_ns)), key=lambda o: (o.updated_ns, o.uri))
    batch, pending = _take(store, fresh, max_new, max_bytes)
    waiting = {o.uri for o in pending}
    remaining = len(fresh) - len(batch) - len(pending)
    uploads: list[Upload] = []
    models_in_batch = {o.uri for o in batch}
    for obj in batch:
        name = leaf_name(obj.uri)
        if name.endswith(SPEC_SUFFIX):
            model_uri = obj.uri[: -len(SPEC_SUFFIX)]
            # A spec changed on its own: re-validate its model (unless the model is in this batch anyway, or
            # still being written: it is registered with its spec once complete).
            if model_uri not in models_in_batch | waiting and kind_of(leaf_name(model_uri)) and model_uri in listed:
                _add(uploads, skipped, landing_uri, model_uri, obj.uri, obj.updated_ns)
            continue
        kind = kind_of(name)
        if kind is None:
            if not name.lower().endswith(tuple(side_file_suffixes())):  # weather files etc. ride along with models
                skipped.append(f"{name}: no validator for this file type (known: {', '.join(all_suffixes())})")
            continue
        spec_uri = obj.uri + SPEC_SUFFIX
        _add(uploads, skipped, landing_uri, obj.uri, spec_uri if spec_uri in listed else None, obj.updated_ns)
    for obj in pending:
        log(f"{leaf_name(obj.uri)}: still being written (changed less than {settle_seconds():g} s ago and does not "
            "end like a complete file); it is registered once complete")
    mark = mark.advance([*batch, *noted])
    for upload in uploads:
        log(f"{upload.kind} upload {upload.key} sha256={upload.sha256}")
    return ScanResult(uploads=uploads, skipped=skipped, cursor=mark.dumps(), remaining=remaining,
                      pending=len(pending))


def _listing(store: ObjectStore, landing_uri: str) -> tuple[list[ObjectInfo], list[tuple[ObjectInfo, str]]]:
    """The landing zone's objects, and its entries that are not objects (symlinks, FIFOs, …) with the reason.

    Only a local folder has such entries; a bucket lists objects only.
    """
    if not isinstance(store, LocalStore):
        return list(store.list(landing_uri)), []
    objects, bad = [], []
    for info, problem in store.entries(landing_uri, tuple(all_suffixes())):
        if problem is None:
            objects.append(info)
        else:
            bad.append((info, problem))
    return objects, bad


def _take(store: ObjectStore, fresh: list[ObjectInfo], max_new: int,
          max_bytes: int) -> tuple[list[ObjectInfo], list[ObjectInfo]]:
    """The objects to handle this tick — bounded by count and by bytes hashed, always at least one — and the
    models still being written, which are left for a later tick (looked at no more than ``4 * max_new``)."""
    batch: list[ObjectInfo] = []
    pending: list[ObjectInfo] = []
    hashed = 0
    for obj in fresh:
        if len(batch) >= max_new or len(pending) >= 4 * max_new or (batch and hashed + obj.size > max_bytes):
            break
        if isinstance(store, LocalStore) and still_being_written(uri_to_path(obj.uri), kind_of(leaf_name(obj.uri))):
            pending.append(obj)
            continue
        batch.append(obj)
        hashed += obj.size
    return batch, pending


def _add(uploads: list[Upload], skipped: list[str], landing_uri: str, model_uri: str, spec_uri: str | None,
         updated_ns: int) -> None:
    """Hash one model (and its spec) into an upload; a file that vanished or cannot be read is skipped."""
    try:
        uploads.append(_upload(landing_uri, model_uri, spec_uri, updated_ns))
    except OSError as exc:
        skipped.append(f"{leaf_name(model_uri)[:120]}: skipped, cannot read it ({exc.strerror or exc}); make it a "
                       "readable regular file and upload it again")


def _upload(landing_uri: str, model_uri: str, spec_uri: str | None, updated_ns: int) -> Upload:
    store = get_store(model_uri)
    sha, _ = store.sha256_and_size(model_uri)
    spec_sha = store.sha256_and_size(spec_uri)[0] if spec_uri else None
    kind = kind_of(leaf_name(model_uri))
    assert kind is not None
    return Upload(uri=model_uri, kind=kind[0], sha256=sha, spec_uri=spec_uri, spec_sha256=spec_sha,
                  key=key_for_upload(landing_uri, model_uri), updated_ns=updated_ns)


# --- files still being written (local folders) ---------------------------------------------------------------
#
# A bucket shows an object only once its upload finished; a folder shows a file while it is being written, and a
# tick in the middle of an upload would register the half file as a model of its own. So a local model file is
# taken only when it is *stable*: it ends like a complete file of its kind (each validator's ``looks_complete``:
# a ZIP's end-of-central-directory record, STEP's END-ISO-10303-21, an STL's declared length, …)
# or it has not changed for VALIDIBOT_LANDING_SETTLE_SECONDS (default 2 s) — then it is taken whatever it holds
# and intake judges it, so a truncated upload is reported, not ignored. Looking at the end (not only waiting)
# keeps complete files, which are most of them, from waiting a tick. Only the first and last 64 KiB are read,
# from a descriptor opened with O_NOFOLLOW | O_NONBLOCK and checked to be a regular file.

_TAIL = 64 * 1024 + 22


def settle_seconds() -> float:
    raw = os.environ.get("VALIDIBOT_LANDING_SETTLE_SECONDS", "2")
    try:
        value = float(raw)
    except ValueError:
        return 2.0
    return value if math.isfinite(value) and value >= 0 else 2.0


def still_being_written(path: Path, kind: tuple[str, str] | None, now_ns: int | None = None) -> bool:
    """``True`` when the model at ``path`` changed within the settle time and does not end like a complete file."""
    if kind is None:
        return False  # specs and side files are read when their model runs; a changed spec re-runs it
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False  # gone or unreadable: hashing it reports why
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        age_ns, settle_ns = (now_ns or time.time_ns()) - st.st_mtime_ns, settle_seconds() * 1e9
        if not -settle_ns < age_ns < settle_ns:  # settled (or stamped in the future by a skewed clock: not waiting)
            return False
        head = os.pread(fd, 512, 0)
        tail = os.pread(fd, _TAIL, max(0, st.st_size - _TAIL))
    except OSError:
        return False
    finally:
        os.close(fd)
    return not _looks_complete(path.name.lower(), st.st_size, head, tail)


def _looks_complete(name: str, size: int, head: bytes, tail: bytes) -> bool:
    """Whether a file ends like a complete one of its kind. A file that does not even *start* like its kind will
    not become one by waiting: it counts as complete and intake says what it is."""
    if size == 0:
        return False  # just created; the bytes are on their way
    found = for_suffix(Path(name).suffix)
    suffix = Path(name).suffix.lower()
    return True if found is None else found[0].looks_complete(suffix, size, head, tail)
