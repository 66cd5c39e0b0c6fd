"""The object-store interface every scheme implements."""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


class StorageError(RuntimeError):
    """A store operation failed; the message names the URI and what to check."""


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    updated_ns: int  # modification/update time in ns since epoch, for sensor cursors


def join_uri(base: str, *parts: str) -> str:
    out = base.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def leaf_name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


class ObjectStore(abc.ABC):
    """Minimal operations the pipeline needs; implementations map them onto the native client."""

    scheme: str

    @abc.abstractmethod
    def open_read(self, uri: str) -> BinaryIO:
        """A readable binary stream (caller closes it); raises FileNotFoundError when missing."""

    @abc.abstractmethod
    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    @abc.abstractmethod
    def upload_file(self, path: Path, uri: str, content_type: str = "application/octet-stream") -> None: ...

    @abc.abstractmethod
    def exists(self, uri: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix_uri: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix_uri`` (recursively), metadata only: no object is read."""

    @abc.abstractmethod
    def delete(self, uri: str) -> None: ...

    def read_bytes(self, uri: str) -> bytes:
        with self.open_read(uri) as fh:
            return fh.read()

    def download_file(self, uri: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.open_read(uri) as src, open(path, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)

    def sha256_and_size(self, uri: str) -> tuple[str, int]:
        """Stream the object through SHA-256 in constant memory."""
        digest, size = hashlib.sha256(), 0
        with self.open_read(uri) as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def copy_to(self, src_uri: str, dst_uri: str, dst_store: ObjectStore | None = None) -> None:
        """Stream-copy across stores (local temp file keeps memory constant for large objects)."""
        import tempfile

        target = dst_store or self
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "blob"
            self.download_file(src_uri, local)
            target.upload_file(local, dst_uri)
