"""``file://`` store: a plain folder. Writes go through a temp file + rename so readers never see halves."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from validibot_pipelines.storage.base import ObjectInfo, ObjectStore

OBJECT_MODE = 0o644


def uri_to_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"{uri}: not a file:// URI")
    return Path(unquote(parsed.path))


def path_to_uri(path: Path) -> str:
    return Path(path).resolve().as_uri()


class LocalStore(ObjectStore):
    scheme = "file"

    def open_read(self, uri: str) -> BinaryIO:
        return open(uri_to_path(uri), "rb")

    def _atomic(self, target: Path) -> tuple[int, str]:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        # mkstemp makes 0600 files; a stored object is read by workers running as another user (the Docker
        # backend's non-root container), so give it the mode an ordinary file write would.
        os.fchmod(fd, OBJECT_MODE)
        return fd, tmp

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        target = uri_to_path(uri)
        fd, tmp = self._atomic(target)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)

    def upload_file(self, path: Path, uri: str, content_type: str = "application/octet-stream") -> None:
        target = uri_to_path(uri)
        fd, tmp = self._atomic(target)
        os.close(fd)
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)

    def exists(self, uri: str) -> bool:
        return uri_to_path(uri).is_file()

    def list(self, prefix_uri: str) -> Iterator[ObjectInfo]:
        root = uri_to_path(prefix_uri)
        if not root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):  # in-flight temp files and hidden files are not objects yet
                    continue
                path = Path(dirpath) / name
                st = path.stat()
                # ctime too: a file moved or copied in with its old mtime (mv, cp -p, rsync -a, tar x) is new here.
                yield ObjectInfo(uri=path_to_uri(path), size=st.st_size,
                                 updated_ns=max(st.st_mtime_ns, st.st_ctime_ns))

    def delete(self, uri: str) -> None:
        uri_to_path(uri).unlink(missing_ok=True)
