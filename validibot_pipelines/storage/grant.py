"""A launch's access grant: the only way a worker on a gs:// or s3:// store touches the store.

The control plane (``orchestration/access.py``) signs, per launch, a URL for each object the worker needs —
GET for every staged input and for the envelope, GET and PUT for the bundle's ``output.json``, PUT for a fixed
number of artifact slots in the bundle — writes them as ``<bundle>/grant.json`` and hands the worker only a
signed GET URL of that file. The worker holds no storage credential: everything else in the bucket (another
model's inputs, bundles and verdicts, the replay index) is out of its reach, whatever the model does.

Why slots and not one upload policy for ``artifacts/``: a V4 signed URL (GCS) or a presigned URL (S3) names one
object and one method, which both clouds (and the signature checks in the tests) verify the same way; POST
policies differ per cloud and gcp-storage-emulator has no form upload. Artifact names (per-volume meshes) are
only known at the end, so the grant holds ``artifacts/<nn>`` slots and the envelope keeps each artifact's name.

Worker side: no cloud SDK, only ``urllib`` — a signed URL is plain HTTPS.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from validibot_pipelines.storage.base import ObjectInfo, ObjectStore, StorageError

GRANT_KIND = "validibot.access-grant.v1"
HTTP_TIMEOUT = 120.0


class ArtifactSlot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uri: str  # canonical object (``<bundle>/artifacts/<nn>``)
    put: str  # signed PUT URL for it


class AccessGrant(BaseModel):
    """What one envelope's worker may do, as signed URLs keyed by the canonical URI they stand for."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["validibot.access-grant.v1"] = GRANT_KIND
    envelope_uri: str  # canonical input envelope
    bundle_uri: str
    expires_at: datetime
    ttl_seconds: int
    signer: str  # who signed (service account / access key id): recorded in the asset metadata
    read: dict[str, str] = Field(default_factory=dict)  # canonical URI -> signed GET
    write: dict[str, str] = Field(default_factory=dict)  # canonical URI -> signed PUT
    artifacts: list[ArtifactSlot] = Field(default_factory=list)

    def expired(self, at: datetime | None = None) -> bool:
        return (at or datetime.now(UTC)) >= self.expires_at


_ACTIVE: contextvars.ContextVar[_GrantSession | None] = contextvars.ContextVar("validibot_grant", default=None)


class _GrantSession:
    """The grant of the envelope this worker thread runs, and which artifact slots it has used."""

    def __init__(self, grant: AccessGrant) -> None:
        self.grant = grant
        self.claimed: dict[str, str] = {}  # artifact name -> slot canonical URI

    def artifact_uri(self, name: str) -> str:
        if name in self.claimed:
            return self.claimed[name]
        used = set(self.claimed.values())
        for slot in self.grant.artifacts:
            if slot.uri not in used:
                self.claimed[name] = slot.uri
                return slot.uri
        raise StorageError(f"artifact {name!r}: this launch's grant has {len(self.grant.artifacts)} artifact "
                           "slot(s), all used; raise VALIDIBOT_ARTIFACT_SLOTS in the control plane")


@contextlib.contextmanager
def granted(grant: AccessGrant) -> Iterator[None]:
    """Route every store access of this thread (and the threads it starts with copied context) through
    ``grant`` while the block runs."""
    token = _ACTIVE.set(_GrantSession(grant))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def active_session() -> _GrantSession | None:
    return _ACTIVE.get()


def parse_grant(raw: bytes) -> AccessGrant | None:
    """The grant in ``raw`` if it is one (an input envelope is not), else ``None``."""
    if GRANT_KIND.encode() not in raw[:4096]:
        return None
    return AccessGrant.model_validate_json(raw)


def _explain(exc: urllib.error.HTTPError, what: str, expires_at: datetime | None) -> StorageError:
    """A refused signed request in words: expiry (the usual cause) gets its own sentence and fix."""
    try:
        body = exc.read(2000).decode("utf-8", "replace")
    except OSError:
        body = ""
    expired = "expired" in body.lower() or (expires_at is not None and datetime.now(UTC) >= expires_at)
    if expired:
        when = f" at {expires_at.isoformat()}" if expires_at else ""
        return StorageError(f"{what}: the signed URL expired{when} (HTTP {exc.code}); the launch outlived its "
                            "grant — re-run the step (each launch signs new URLs, valid for the step's timeout "
                            "plus VALIDIBOT_SIGNED_URL_GRACE_SECONDS)")
    return StorageError(f"{what}: the store refused the signed request (HTTP {exc.code}: {body[:300].strip()}); "
                        "a signed URL is valid only for its own object and method")


class SignedUrlStore(ObjectStore):
    """GET/PUT on signed URLs (and ``https://`` URIs read directly, e.g. the grant itself)."""

    scheme = "https"

    def __init__(self, session: _GrantSession | None = None) -> None:
        self.session = session

    @property
    def _expires(self) -> datetime | None:
        return self.session.grant.expires_at if self.session else None

    def _url(self, uri: str, table: Literal["read", "write"]) -> str:
        if uri.startswith(("https://", "http://")):
            return uri
        if self.session is None:
            raise StorageError(f"{uri}: no access grant is active")
        grant = self.session.grant
        found = (grant.read if table == "read" else grant.write).get(uri)
        if found is None and table == "write":
            found = next((s.put for s in grant.artifacts if s.uri == uri), None)
        if found is None:
            verb = "read" if table == "read" else "write"
            raise StorageError(f"{uri}: this launch may not {verb} it (not in its access grant); a worker touches "
                               "only its own inputs and its own execution bundle")
        return found

    def open_read(self, uri: str) -> BinaryIO:
        url = self._url(uri, "read")
        try:
            response = urllib.request.urlopen(url, timeout=HTTP_TIMEOUT)  # noqa: S310 - a signed https/http URL
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise FileNotFoundError(uri) from None
            raise _explain(exc, f"reading {without_query(uri)}", self._expires) from None
        except urllib.error.URLError as exc:
            raise StorageError(f"reading {without_query(uri)}: cannot reach the store ({exc.reason})") from None
        return response

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._put(uri, io.BytesIO(data), len(data))

    def upload_file(self, path: Path, uri: str, content_type: str = "application/octet-stream") -> None:
        with open(path, "rb") as fh:
            self._put(uri, fh, path.stat().st_size)

    def _put(self, uri: str, body: BinaryIO, size: int) -> None:
        url = self._url(uri, "write")
        # No Content-Type header: it would have to be part of the signature; the store records the default.
        request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Length": str(size),
                                                                            "Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT):  # noqa: S310
                pass
        except urllib.error.HTTPError as exc:
            raise _explain(exc, f"writing {without_query(uri)}", self._expires) from None
        except urllib.error.URLError as exc:
            raise StorageError(f"writing {without_query(uri)}: cannot reach the store ({exc.reason})") from None

    def exists(self, uri: str) -> bool:
        """By GET: a signed URL is for one method, and the grant signs GET (not HEAD) for what may be read."""
        try:
            with self.open_read(uri):
                return True
        except FileNotFoundError:
            return False

    def list(self, prefix_uri: str) -> Iterator[ObjectInfo]:
        raise StorageError(f"{prefix_uri}: a worker on signed URLs cannot list the store")

    def delete(self, uri: str) -> None:
        raise StorageError(f"{uri}: a worker on signed URLs cannot delete objects")


def without_query(uri: str) -> str:
    """A URI without its query string: signatures stay out of messages and logs."""
    return uri.split("?", 1)[0]
