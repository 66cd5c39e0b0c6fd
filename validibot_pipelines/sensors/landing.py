"""Scan a landing zone for new uploads — plain logic, no Dagster objects, so it is easy to test.

The cursor is a high-water mark ``(updated_ns, uri)`` over the objects already handled, plus the objects
handled within a trailing *lookback window* below the mark (``VALIDIBOT_LANDING_LOOKBACK_SECONDS``, default
1 h). Each tick lists object metadata (no reads), then hashes and registers at most ``max_new`` objects —
and at most ``max_bytes`` of content — that are above the mark or inside the window but not yet handled,
oldest first; the rest wait for the next tick. Reads and partition registrations are therefore proportional
to new objects, not to the size of the bucket (the listing itself is metadata of every object; event
notifications would remove that, see the README).

Why the window: an object can appear with a timestamp older than objects already handled — an S3 multipart
upload is stamped when it *started*, and a large upload can finish after a small one. On a local folder the
store reports the later of mtime and ctime, so ``mv`` / ``cp -p`` / ``rsync -a`` / ``tar x`` (old mtime, new
ctime) are seen as new. Re-announcing an object is harmless anyway: its run key (checksum + spec checksum)
is deduplicated by Dagster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from validibot_pipelines.orchestration.models import KINDS, RESOURCE_SUFFIXES, SPEC_SUFFIX, kind_of
from validibot_pipelines.orchestration.revalidate import spec_version
from validibot_pipelines.storage import get_store, leaf_name
from validibot_pipelines.storage.base import ObjectInfo


@dataclass(frozen=True)
class Upload:
    """A new model upload to validate."""

    uri: str
    kind: str
    sha256: str
    spec_uri: str | None
    spec_sha256: str | None

    @property
    def run_key(self) -> str:
        """Identical model bytes with an identical spec dedupe to the same run; a changed spec re-runs."""
        return f"{self.kind}:{self.sha256}:{spec_version(self.spec_sha256)}"


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
    skipped: list[str]  # files no validator handles, with the reason
    cursor: str
    remaining: int  # new objects left for later ticks


def scan(landing_uri: str, cursor: str | None, max_new: int = 50, max_bytes: int = 2 * 1024**3,
         log: Callable[[str], None] = lambda _msg: None) -> ScanResult:
    store = get_store(landing_uri)
    mark = Mark.loads(cursor)
    fresh = sorted((o for o in store.list(landing_uri) if not mark.handled(o.uri, o.updated_ns)),
                   key=lambda o: (o.updated_ns, o.uri))
    batch: list[ObjectInfo] = []
    hashed = 0
    for obj in fresh[:max_new]:  # bounded by count and by bytes hashed (always at least one object)
        if batch and hashed + obj.size > max_bytes:
            break
        batch.append(obj)
        hashed += obj.size
    remaining = len(fresh) - len(batch)
    uploads: list[Upload] = []
    skipped: list[str] = []
    models_in_batch = {o.uri for o in batch}
    for obj in batch:
        name = leaf_name(obj.uri)
        if name.endswith(SPEC_SUFFIX):
            model_uri = obj.uri[: -len(SPEC_SUFFIX)]
            # A spec changed on its own: re-validate its model (unless the model is in this batch anyway).
            if model_uri not in models_in_batch and kind_of(leaf_name(model_uri)) and store.exists(model_uri):
                uploads.append(_upload(model_uri, obj.uri))
            continue
        kind = kind_of(name)
        if kind is None:
            if not name.lower().endswith(tuple(RESOURCE_SUFFIXES)):  # weather files etc. ride along with models
                skipped.append(f"{name}: no validator for this file type (known: {', '.join(sorted(KINDS))})")
            continue
        spec_uri = obj.uri + SPEC_SUFFIX
        uploads.append(_upload(obj.uri, spec_uri if store.exists(spec_uri) else None))
    mark = mark.advance(batch)
    for upload in uploads:
        log(f"new {upload.kind} upload {upload.uri} sha256={upload.sha256}")
    return ScanResult(uploads=uploads, skipped=skipped, cursor=mark.dumps(), remaining=remaining)


def _upload(model_uri: str, spec_uri: str | None) -> Upload:
    store = get_store(model_uri)
    sha, _ = store.sha256_and_size(model_uri)
    spec_sha = store.sha256_and_size(spec_uri)[0] if spec_uri else None
    kind = kind_of(leaf_name(model_uri))
    assert kind is not None
    return Upload(uri=model_uri, kind=kind[0], sha256=sha, spec_uri=spec_uri, spec_sha256=spec_sha)
