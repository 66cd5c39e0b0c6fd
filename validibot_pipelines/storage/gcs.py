"""``gs://`` store on google-cloud-storage.

With ``STORAGE_EMULATOR_HOST`` set (gcp-storage-emulator in tests) the client uses anonymous credentials;
in production it uses the ambient service account (no secrets in config).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from validibot_pipelines.storage.base import ObjectInfo, ObjectStore


def upload_retry():  # noqa: ANN201 - google.api_core Retry
    """Uploads retried with exponential backoff on transient errors (429, 5xx, dropped connections).

    google-cloud-storage only retries uploads by default when a generation precondition is given; our writes
    are idempotent (same bytes to the same key), so retrying them unconditionally is safe.
    """
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_delay(initial=0.2, multiplier=2.0, maximum=8.0).with_timeout(120.0)


def split_bucket(uri: str, scheme: str) -> tuple[str, str]:
    rest = uri[len(scheme) + 3 :]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri}: no bucket name")
    return bucket, key


class GCSStore(ObjectStore):
    scheme = "gs"

    @cached_property
    def client(self):  # noqa: ANN201 - google client type
        from google.cloud import storage

        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "validibot-local")
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            return storage.Client(project=project, credentials=AnonymousCredentials())
        return storage.Client(project=project)

    def _blob(self, uri: str):  # noqa: ANN202
        bucket, key = split_bucket(uri, "gs")
        return self.client.bucket(bucket).blob(key)

    def open_read(self, uri: str) -> BinaryIO:
        from google.api_core.exceptions import NotFound

        blob = self._blob(uri)
        try:
            blob.reload()
        except NotFound:
            raise FileNotFoundError(uri) from None
        return blob.open("rb")

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._blob(uri).upload_from_string(data, content_type=content_type, retry=upload_retry())

    def upload_file(self, path: Path, uri: str, content_type: str = "application/octet-stream") -> None:
        self._blob(uri).upload_from_filename(str(path), content_type=content_type, retry=upload_retry())

    def download_file(self, uri: str, path: Path) -> None:
        from google.api_core.exceptions import NotFound

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._blob(uri).download_to_filename(str(path))
        except NotFound:
            path.unlink(missing_ok=True)
            raise FileNotFoundError(uri) from None

    def exists(self, uri: str) -> bool:
        return self._blob(uri).exists()

    def list(self, prefix_uri: str) -> Iterator[ObjectInfo]:
        bucket, prefix = split_bucket(prefix_uri, "gs")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        for blob in self.client.list_blobs(bucket, prefix=prefix):
            if blob.name.endswith("/"):
                continue
            updated = int(blob.updated.timestamp() * 1e9) if blob.updated else 0
            yield ObjectInfo(uri=f"gs://{bucket}/{blob.name}", size=blob.size or 0, updated_ns=updated)

    def delete(self, uri: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._blob(uri).delete()
        except NotFound:
            pass
