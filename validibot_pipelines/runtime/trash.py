"""Work folders a finished model left behind: moved aside at once, deleted in the background.

Why: on a disk file system (ext4 mounted with ``discard``, as on these VMs) deleting a model's few files takes
0.4-0.9 ms of waiting per folder, and a batch deletes two per model and step (its lane folder's job, the
worker's work folder) on the lanes' path. :func:`discard` renames the folder into a bin outside it — one
system call, so the folder is gone from where it was (a lane's sandbox, which sees only the lane's folder,
never sees the bin) — and one daemon thread deletes it. A folder that cannot be renamed (another file system)
is deleted at once, as before. :func:`drain` waits for the deletions and removes the bins; it runs at exit,
and a worker that leaves with ``os._exit`` calls it first.
"""

from __future__ import annotations

import atexit
import os
import queue
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

Remove = Callable[[Path], None]

_pending: queue.Queue[tuple[Path, Remove]] = queue.Queue()
_bins: dict[Path, Path] = {}
_lock = threading.Lock()
_started = False


def discard(path: Path, outside: Path, remove: Remove) -> None:
    """Take ``path`` away now and have ``remove(path)`` delete it later; the bin is made in ``outside`` (on the
    same file system, and not inside anything a sandbox can see)."""
    try:
        target = _bin(outside) / uuid.uuid4().hex
        os.rename(path, target)
    except FileNotFoundError:
        return
    except OSError:  # another file system, or no room for a bin: delete it here and now
        remove(path)
        return
    _start()
    _pending.put((target, remove))


def drain() -> None:
    """Wait until every discarded folder is deleted, then remove the (empty) bins."""
    if _started:
        _pending.join()
    with _lock:
        for bin_ in _bins.values():
            try:
                os.rmdir(bin_)
            except OSError:
                pass
        _bins.clear()


def _bin(outside: Path) -> Path:
    with _lock:
        found = _bins.get(outside)
        if found is None:
            found = _bins[outside] = Path(tempfile.mkdtemp(prefix="validibot-trash-", dir=outside))
        return found


def _start() -> None:
    global _started
    with _lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_delete, name="validibot-trash", daemon=True).start()
    atexit.register(drain)


def _delete() -> None:
    while True:
        path, remove = _pending.get()
        try:
            remove(path)
        except Exception:  # noqa: BLE001,S110 - best effort: remove() already logs what it could not delete
            pass
        finally:
            _pending.task_done()
