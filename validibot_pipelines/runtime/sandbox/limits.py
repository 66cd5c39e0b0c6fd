"""Resource limits for sandboxed processes, and telling afterwards which limit a failed process hit.

Limits are rlimits set in the child before it execs (inherited by everything it starts): address space,
CPU time, file size, open files, no core dumps. The sandbox as a whole is capped by cgroups when the worker
may create them (:class:`SandboxCgroup`: processes and memory, v1 or a delegated v2 hierarchy) and by
``RLIMIT_NPROC`` otherwise; the kernel does not apply ``RLIMIT_NPROC`` to root, so a root worker without a
writable cgroup relies on the PID namespace and the timeout for a fork bomb (said in docs/security.md).

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
CGROUP_V1_MEMORY = Path("/sys/fs/cgroup/memory")
KEYCTL_JOIN_SESSION_KEYRING = 1
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
CGROUP_V2 = Path("/sys/fs/cgroup")

MEMORY_WORDS = ("MemoryError", "bad_alloc", "Cannot allocate memory", "out of memory", "Out of memory",
                "failed to map segment", "mmap failed", "Unable to allocate")
FILE_SIZE_WORDS = ("File too large", "[Errno 27]")
CRASH_SIGNALS = (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS)
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


class SandboxCgroup:
    """Throw-away cgroups capping one sandbox as a whole: processes (pids) and memory (RAM, tmpfs, memfd).

    Why both beside the rlimits: ``RLIMIT_AS`` is per process (eight children of 300 MiB each pass a 512 MiB
    limit) and does not count tmpfs or memfd pages; a memory cgroup counts all of them. v1 hierarchies
    (``/sys/fs/cgroup/pids``, ``/sys/fs/cgroup/memory``) or a delegated v2 one, whichever the worker may write;
    without either, the rlimits are all there is (docs/security.md says so).
    """

    def __init__(self, max_processes: int, memory_bytes: int) -> None:
        self.paths: list[Path] = []
        self.pids_path: Path | None = None
        self.memory_path: Path | None = None
        name = f"validibot-{uuid.uuid4().hex[:12]}"
        if _v2_controllers() >= {"pids", "memory"}:
            path = self._make(CGROUP_V2 / name, {"pids.max": max_processes, "memory.max": memory_bytes,
                                                 "memory.swap.max": 0})
            self.pids_path = self.memory_path = path
            return
        self.pids_path = self._make(CGROUP_V1_PIDS / name, {"pids.max": max_processes})
        self.memory_path = self._make(CGROUP_V1_MEMORY / name, {"memory.limit_in_bytes": memory_bytes,
                                                                "memory.memsw.limit_in_bytes": memory_bytes})

    def _make(self, path: Path, settings: dict[str, int]) -> Path | None:
        if not (path.parent / "cgroup.procs").exists() or not os.access(path.parent, os.W_OK):
            return None
        try:
            path.mkdir()
        except OSError:
            return None
        for key, value in settings.items():
            try:
                (path / key).write_text(str(value))
            except OSError:
                if key in ("pids.max", "memory.max", "memory.limit_in_bytes"):  # the limit itself: required
                    with contextlib.suppress(OSError):
                        path.rmdir()
                    return None
        self.paths.append(path)
        return path

    @property
    def path(self) -> Path | None:
        """Any of this sandbox's cgroups (for listing its processes)."""
        return self.pids_path or self.memory_path

    def hit_max(self) -> bool:
        """The pids cgroup refused a fork."""
        return self.pids_path is not None and _event(self.pids_path / "pids.events", "max")

    def oom_killed(self) -> bool:
        """The memory cgroup killed a process of the sandbox for exceeding its memory."""
        if self.memory_path is None:
            return False
        return _event(self.memory_path / "memory.events", "oom_kill") or \
            _event(self.memory_path / "memory.oom_control", "oom_kill")

    def counters(self) -> tuple[int, int]:
        """How often, so far, the pids cgroup refused a fork and the memory cgroup killed a process (a warm
        sandbox outlives many jobs: each job's share is the difference of two readings)."""
        pids = _count(self.pids_path / "pids.events", "max") if self.pids_path else 0
        oom = 0
        if self.memory_path is not None:
            oom = max(_count(self.memory_path / "memory.events", "oom_kill"),
                      _count(self.memory_path / "memory.oom_control", "oom_kill"))
        return pids, oom

    def pids(self) -> list[int]:
        if self.path is None:
            return []
        return [int(p) for p in _read(self.path / "cgroup.procs").split()]

    def remove(self) -> None:
        """Kill what is left (nothing, normally: the PID namespace died with bwrap) and remove the cgroups."""
        import time

        pause = 0.001  # killed processes leave the group within a millisecond or two: poll finely at first
        for _ in range(60):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        for path in self.paths:
            with contextlib.suppress(OSError):
                path.rmdir()


def _v2_controllers() -> set[str]:
    if not (CGROUP_V2 / "cgroup.subtree_control").exists() or not os.access(CGROUP_V2, os.W_OK):
        return set()
    return set(_read(CGROUP_V2 / "cgroup.subtree_control").split())


def _event(path: Path, key: str) -> bool:
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip() not in ("", "0"):
            return True
    return False


def _count(path: Path, key: str) -> int:
    for line in _read(path).splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value.strip() or 0)
            except ValueError:
                return 0
    return 0


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def preexec(limits: SandboxLimits, timeout: float, cgroup: SandboxCgroup) -> Callable[[], None]:
    """The function run in the forked child before exec: die with the worker, a fresh session keyring, join
    the cgroups, set rlimits.

    Only async-signal-safe-ish work happens here (prctl, keyctl, small writes, setrlimit calls): it runs
    between fork and exec. The NPROC baseline is counted before the fork. Why a new keyring: namespaces do not
    cover the kernel's session keyring, so without it a model could read keys the worker holds and leave
    keys for the next model to read.
    """
    nproc = None if os.getuid() == 0 else _processes_of_current_user() + limits.max_processes
    procs = [str(path / "cgroup.procs") for path in cgroup.paths]
    cpu = cpu_seconds(limits, timeout)
    libc = ctypes.CDLL(None, use_errno=True)
    keyctl = SYS_KEYCTL.get(os.uname().machine)

    def apply() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if keyctl is not None:
            libc.syscall(keyctl, KEYCTL_JOIN_SESSION_KEYRING, None)
        for cgroup_procs in procs:
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
def sandbox_cgroup(limits: SandboxLimits) -> Iterator[SandboxCgroup]:
    group = SandboxCgroup(limits.max_processes, limits.memory_bytes)
    try:
        yield group
    finally:
        group.remove()


def which_limit(*, signum: int | None, text: str, peak_vm_bytes: int, cpu_used: float, limits: SandboxLimits,
                timeout: float, pids_max_hit: bool, oom_killed: bool = False, peak_rss_bytes: int = 0) -> str | None:
    """The limit a failed sandboxed process most plausibly hit: memory, cpu, file_size, processes, open_files.

    Memory is sampled, so a model that allocates to the limit and aborts between two samples can show a peak
    well under it; a native crash (abort, segfault) after resident memory reached half the limit counts as the
    memory limit too (``ru_maxrss`` is exact even after the process is gone).
    """
    if oom_killed:
        return "memory"
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
    if signum in CRASH_SIGNALS and max(peak_vm_bytes, peak_rss_bytes) >= 0.5 * limits.memory_bytes:
        return "memory"
    if any(w in text for w in PROCESS_WORDS):
        return "processes"
    return None
