"""Scan a landing zone for new uploads — plain logic, no Dagster objects, so it is easy to test.

The cursor is a high-water mark ``(updated_ns, uri)`` over the objects already handled. Each tick lists
object metadata (no reads), then hashes and registers at most ``max_new`` objects above the mark, oldest
first, and moves the mark past them; the rest wait for the next tick. Reads and partition registrations
are therefore proportional to new objects, not to the size of the bucket.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from validibot_pipelines.orchestration.models import KINDS, RESOURCE_SUFFIXES, SPEC_SUFFIX, kind_of
from validibot_pipelines.storage import get_store, leaf_name


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
        return f"{self.kind}:{self.sha256}:{self.spec_sha256 or 'nospec'}"


@dataclass(frozen=True)
class Mark:
    updated_ns: int
    uri: str

    def dumps(self) -> str:
        return json.dumps({"updated_ns": self.updated_ns, "uri": self.uri})

    @classmethod
    def loads(cls, cursor: str | None) -> Mark:
        if not cursor:
            return cls(-1, "")
        data = json.loads(cursor)
        return cls(int(data["updated_ns"]), str(data["uri"]))


@dataclass
class ScanResult:
    uploads: list[Upload]
    skipped: list[str]  # files no validator handles, with the reason
    cursor: str
    remaining: int  # new objects left for later ticks


def scan(landing_uri: str, cursor: str | None, max_new: int = 50,
         log: Callable[[str], None] = lambda _msg: None) -> ScanResult:
    store = get_store(landing_uri)
    mark = Mark.loads(cursor)
    fresh = sorted(
        (o for o in store.list(landing_uri) if (o.updated_ns, o.uri) > (mark.updated_ns, mark.uri)),
        key=lambda o: (o.updated_ns, o.uri),
    )
    batch, remaining = fresh[:max_new], max(0, len(fresh) - max_new)
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
    if batch:
        last = batch[-1]
        mark = Mark(last.updated_ns, last.uri)
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
