"""Pick the store for a URI by its scheme; stores are cached so clients are built once per process."""

from __future__ import annotations

from functools import cache

from validibot_pipelines.storage.base import ObjectStore
from validibot_pipelines.storage.grant import SignedUrlStore, active_session


@cache
def _store_for(scheme: str) -> ObjectStore:
    if scheme == "file":
        from validibot_pipelines.storage.local import LocalStore

        return LocalStore()
    if scheme == "gs":
        from validibot_pipelines.storage.gcs import GCSStore

        return GCSStore()
    if scheme == "s3":
        from validibot_pipelines.storage.s3 import S3Store

        return S3Store()
    raise ValueError(f"unsupported storage scheme {scheme!r}: use file://, gs:// or s3://")


def get_store(uri: str) -> ObjectStore:
    """The store for ``uri``. Inside a worker running on an access grant (``storage/grant.py``) every gs:// and
    s3:// URI goes through the grant's signed URLs, never a client with credentials; ``https://`` URIs (signed
    URLs) are plain HTTP."""
    scheme, sep, _ = uri.partition("://")
    if not sep:
        raise ValueError(f"{uri!r} is not a URI: use file:///abs/path, gs://bucket/key or s3://bucket/key")
    if scheme in ("https", "http") or (scheme in ("gs", "s3") and active_session() is not None):
        return SignedUrlStore(active_session())
    try:
        return _store_for(scheme)
    except ValueError as exc:  # name the offending URI, not just its scheme
        raise ValueError(f"{uri!r}: {exc}") from None


def sha256_of_uri(uri: str) -> tuple[str, int]:
    return get_store(uri).sha256_and_size(uri)
