"""Resource limits for sandboxed processes, and telling afterwards which limit a failed process hit.

Limits are rlimits set in the child before it execs (inherited by everything it starts): address space,
CPU time, file size, open files, no core dumps. Processes are capped by a pids cgroup when the worker may
create one (v1 ``/sys/fs/cgroup/pids`` or a delegated v2 hierarchy) and by ``RLIMIT_NPROC`` otherwise; the
kernel does not apply ``RLIMIT_NPROC`` to root, so a root worker without a writable cgroup relies on the PID
namespace and the timeout for a fork bomb (said in the README's security model).

Which limit was hit is read from what the process left behind: the signal (SIGXCPU, SIGXFSZ), the pids
cgroup's ``max`` event, the peak address space a watcher saw, and the error words of the C library and
Python (``MemoryError``, ``std::bad_alloc``, ``Too many open files``…). A model can print those words
itself, but that only changes which of its own failures it is blamed for — never a verdict of success.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from validibot_pipelines.envelopes.base import SandboxLimits

PR_SET_PDEATHSIG = 1
CGROUP_V1_PIDS = Path("/sys/fs/cgroup/pids")
CGROUP_V2 = Path("/sys/fs/cgroup")

MEMORY_WORDS = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory", "Out of memory",
                "failed to map segment", "mmap failed", "Unable to allocate")
FILE_SIZE_WORDS = ("File too large", "[Errno 27]")
OPEN_FILES_WORDS = ("Too many open files", "[Errno 24]")
PROCESS_WORDS = ("can't start new thread", "Resource temporarily unavailable", "fork failed", "[Errno 11]")


def cpu_seconds(limits: SandboxLimits, timeout: float) -> int:
    return limits.cpu_seconds or max(10, int(timeout * 2) + 5)


def _processes_of_current_user() -> int:
    """Tasks (threads included) the current uid runs now: RLIMIT_NPROC counts all of them, not just ours."""
    uid = os.getuid()
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                total += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return total


class PidsCgroup:
    """A throw-away pids cgroup capping every process of one sandbox; ``None`` path when none can be made."""

    def __init__(self, max_processes: int) -> None:
        self.path: Path | None = None
        for parent in (CGROUP_V1_PIDS, CGROUP_V2):
            if not (parent / "cgroup.procs").exists() or not os.access(parent, os.W_OK):
                continue
            if parent == CGROUP_V2 and "pids" not in _read(parent / "cgroup.subtree_control"):
                continue
            path = parent / f"validibot-{uuid.uuid4().hex[:12]}"
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(max_processes))
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            self.path = path
            break

    def hit_max(self) -> bool:
        if self.path is None:
            return False
        for line in _read(self.path / "pids.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip() not in ("", "0"):
                return True
        return False

    def pids(self) -> list[int]:
        if self.path is None:
            return []
        return [int(p) for p in _read(self.path / "cgroup.procs").split()]

    def remove(self) -> None:
        """Kill what is left (nothing, normally: the PID namespace died with bwrap) and remove the cgroup."""
        if self.path is None:
            return
        import time

        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def preexec(limits: SandboxLimits, timeout: float, cgroup: PidsCgroup) -> Callable[[], None]:
    """The function run in the forked child before exec: die with the worker, join the cgroup, set rlimits.

    Only async-signal-safe-ish work happens here (a prctl, one small write, setrlimit calls): it runs between
    fork and exec. The NPROC baseline is counted before the fork.
    """
    nproc = None if os.getuid() == 0 else _processes_of_current_user() + limits.max_processes
    cgroup_procs = str(cgroup.path / "cgroup.procs") if cgroup.path else None
    cpu = cpu_seconds(limits, timeout)
    libc = ctypes.CDLL(None, use_errno=True)

    def apply() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if cgroup_procs:
            with open(cgroup_procs, "w") as fh:
                fh.write("0")
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


@contextlib.contextmanager
def pids_cgroup(max_processes: int) -> Iterator[PidsCgroup]:
    group = PidsCgroup(max_processes)
    try:
        yield group
    finally:
        group.remove()


def which_limit(*, signum: int | None, text: str, peak_vm_bytes: int, cpu_used: float, limits: SandboxLimits,
                timeout: float, pids_max_hit: bool) -> str | None:
    """The limit a failed sandboxed process most plausibly hit: memory, cpu, file_size, processes, open_files."""
    if signum == signal.SIGXCPU or (signum == signal.SIGKILL and cpu_used >= cpu_seconds(limits, timeout) * 0.95):
        return "cpu"
    if signum == signal.SIGXFSZ or any(w in text for w in FILE_SIZE_WORDS):
        return "file_size"
    if pids_max_hit:
        return "processes"
    if any(w in text for w in OPEN_FILES_WORDS):
        return "open_files"
    if any(w in text for w in MEMORY_WORDS) or peak_vm_bytes >= 0.9 * limits.memory_bytes:
        return "memory"
    if any(w in text for w in PROCESS_WORDS):
        return "processes"
    return None
