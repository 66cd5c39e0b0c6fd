"""``file://`` store: a plain folder. Writes go through a temp file + rename so readers never see halves."""

from __future__ import annotations

import os
import shutil
import stat
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
        for info, problem in self.entries(prefix_uri):
            if problem is None:
                yield info

    def entries(self, prefix_uri: str, model_suffixes: tuple[str, ...] = ()) -> Iterator[tuple[ObjectInfo, str | None]]:
        """Every entry under ``prefix_uri`` with ``None``, or with why it is not an object (for a log line).

        Why so careful: the landing zone is written by users, and one odd entry must never stop the scan or
        leak what lies outside it. Nothing is opened and nothing is followed: entries are judged by ``lstat``
        (``os.scandir`` with ``follow_symlinks=False``), so a symlink (dangling or not) is reported, never
        read; FIFOs, sockets and devices are reported, never opened (opening a FIFO blocks); a folder named
        like a model (ending in one of ``model_suffixes``, e.g. ``x.fmu/``) is reported instead of walked; an
        entry that vanishes or cannot be read while listing is reported and the scan goes on.
        """
        root = uri_to_path(prefix_uri)
        try:
            if not stat.S_ISDIR(os.stat(root).st_mode):
                return
        except OSError:
            return
        yield from _walk(Path(os.path.realpath(root)), tuple(s.lower() for s in model_suffixes))

    def delete(self, uri: str) -> None:
        uri_to_path(uri).unlink(missing_ok=True)


_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}
_MAX_REPORTED_NAME = 120


def _shown(path: Path) -> str:
    name = str(path)
    return name if len(name) <= _MAX_REPORTED_NAME else name[:40] + "…" + name[-(_MAX_REPORTED_NAME - 41):]


def _walk(folder: Path, model_suffixes: tuple[str, ...]) -> Iterator[tuple[ObjectInfo, str | None]]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield (ObjectInfo(uri=folder.as_uri(), size=0, updated_ns=0),
               f"{_shown(folder)}: cannot list this folder ({exc.strerror or exc}); make it readable")
        return
    for entry in entries:
        if entry.name.startswith("."):  # in-flight temp files and hidden files are not objects yet
            continue
        path = folder / entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:  # vanished between listing and stat
            yield (ObjectInfo(uri=path.as_uri(), size=0, updated_ns=0),
                   f"{_shown(path)}: skipped, cannot stat it ({exc.strerror or exc})")
            continue
        # ctime too: a file moved or copied in with its old mtime (mv, cp -p, rsync -a, tar x) is new here.
        info = ObjectInfo(uri=path.as_uri(), size=st.st_size, updated_ns=max(st.st_mtime_ns, st.st_ctime_ns))
        mode = stat.S_IFMT(st.st_mode)
        if mode == stat.S_IFDIR:
            if model_suffixes and entry.name.lower().endswith(model_suffixes):
                yield info, (f"{_shown(path)}: skipped, it is a folder named like a model; upload the model as "
                             "one file (an archive model such as an FMU is one ZIP: zip the folder's contents)")
            else:
                yield from _walk(path, model_suffixes)
        elif mode != stat.S_IFREG:
            what = _KINDS.get(mode, "not a regular file")
            yield info, (f"{_shown(path)}: skipped, it is {what}; symbolic links and special files are never "
                         "followed or read — copy the file itself into the landing zone")
        elif not _utf8(entry.name):
            yield info, (f"{_shown(path)}: skipped, its name is not valid UTF-8; rename it (UTF-8 names only)")
        else:
            yield info, None


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates (surrogateescape)
        return False
    return True
