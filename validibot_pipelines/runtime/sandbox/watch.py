"""Watch a sandbox from outside: peak address space and CPU time of its processes while they run.

Why a watcher: a process killed for exceeding its address space takes its ``/proc`` record with it, and the
``rusage`` bwrap reports to its parent does not include the processes inside the PID namespace. Sampling
``VmPeak`` (a high-water mark the kernel keeps per process) every 50 ms is enough to tell "ran into the
memory limit" from "crashed" afterwards. Reads ``/proc`` only; never signals anything.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = 1024


@dataclass
class Peaks:
    vm_bytes: int = 0
    rss_bytes: int = 0
    cpu_seconds: float = 0.0
    seen: dict[int, int] = field(default_factory=dict)  # pid -> start time (clock ticks) of every process seen


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(root: int) -> list[int]:
    tree = _children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def _sample(pid: int, peaks: Peaks) -> None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmPeak:"):
                    peaks.vm_bytes = max(peaks.vm_bytes, int(line.split()[1]) * PAGE)
                elif line.startswith("VmHWM:"):
                    peaks.rss_bytes = max(peaks.rss_bytes, int(line.split()[1]) * PAGE)
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rfind(b")") + 2:].split()
        peaks.cpu_seconds = max(peaks.cpu_seconds, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
        peaks.seen.setdefault(pid, int(fields[19]))
    except (OSError, ValueError, IndexError):
        return


class Watcher:
    """Sample the process tree under ``root`` until :meth:`stop`; ``pids`` lists a cgroup's members if known."""

    def __init__(self, root: int, pids: Callable[[], list[int]] | None = None,
                 interval: float = 0.05) -> None:
        self.peaks = Peaks()
        self._root = root
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"sandbox-watch-{root}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            pids = (self._pids() if self._pids else []) or descendants(self._root)
            for pid in pids:
                _sample(pid, self.peaks)
            self._stop.wait(self._interval)

    def stop(self) -> Peaks:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.peaks


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rfind(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def kill_survivors(peaks: Peaks, root: int) -> int:
    """SIGKILL every process the watcher saw under the sandbox that still runs (same pid *and* start time, so
    a reused pid is never hit). Why: without a PID namespace (container mode) a model's daemon that left its
    session would outlive the run and could rewrite results after they were checked. Returns how many."""
    import signal

    killed = 0
    for pid, started in peaks.seen.items():
        if pid != root and start_time(pid) == started:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                continue
    return killed
