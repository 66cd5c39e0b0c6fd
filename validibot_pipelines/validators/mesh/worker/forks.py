"""Inside the sandbox: run a function in a forked copy of this process, under its own timeout, and say how it
ended.

The meshing child imports the part once and then forks one process per candidate (and one for the merge)
from that state (:func:`~validibot_pipelines.validators.mesh.worker.child.mesh`). Each forked process dies with
its parent (PDEATHSIG), writes its stdout/stderr to an unnamed file of its own, gets a CPU-time limit for its
own timeout (lowered from the sandbox's), is the OOM killer's first choice (``oom_score_adj``), writes its
answer as ``{"ok": true, ...}`` / ``{"ok": false, "error": ...}`` JSON to its result file and leaves with
``os._exit`` (nothing of the parent's — Gmsh's finalisation, buffered output — runs twice). A process that
crashes, hangs (SIGKILL at its deadline) or hits a limit ends alone: the others and the parent go on.

The record of each (:meth:`Forks.wait`) is what the worker outside turns into a verdict, with the same limit
detection as for a sandboxed process of its own: exit code or signal, timed out or not, seconds, the tail of
its output, its peak address space and CPU time. Nothing here trusts what a forked process wrote; the worker
reads the result files itself, with the usual checks, after the sandbox has ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PR_SET_PDEATHSIG = 1
SAMPLE_SECONDS = 0.05  # how often the peak address space of running processes is read
TAIL_CHARS = 4000
OOM_SCORE_ADJ = "500"  # a candidate, not the process holding the imported part, is what the OOM killer takes

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass
class _Running:
    key: str
    pid: int
    pidfd: int
    out: IO[bytes]
    started: float
    deadline: float
    vm_peak: int = 0
    timed_out: bool = False


class Forks:
    """The forked processes of this process that are still running, each under its deadline."""

    def __init__(self) -> None:
        self._running: dict[int, _Running] = {}  # by pidfd

    def __len__(self) -> int:
        return len(self._running)

    def start(self, key: str, work: Callable[[], dict[str, Any]], result: Path, timeout: float,
              cpu_seconds: int) -> None:
        """Fork; the new process runs ``work()`` and writes ``{"ok": true, **work()}`` (or the error) to
        ``result``. Returns at once in this process."""
        sys.stdout.flush()
        sys.stderr.flush()
        out = tempfile.TemporaryFile(buffering=0)  # TMPDIR is the sandbox's scratch folder
        parent = os.getpid()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _become(work, result, out.fileno(), cpu_seconds, parent, started)
        pidfd = os.pidfd_open(pid)
        self._running[pidfd] = _Running(key, pid, pidfd, out, started, started + timeout)

    def wait(self) -> list[tuple[str, dict[str, Any]]]:
        """Block until at least one process has ended (killing those past their deadline); ``(key, record)`` of
        each that ended."""
        ended: list[tuple[str, dict[str, Any]]] = []
        while self._running and not ended:
            now = time.monotonic()
            for run in self._running.values():
                if not run.timed_out and now >= run.deadline:
                    run.timed_out = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(run.pid, signal.SIGKILL)
                run.vm_peak = max(run.vm_peak, _vm_peak(run.pid))
            wake = min([SAMPLE_SECONDS] + [r.deadline - now for r in self._running.values() if not r.timed_out])
            poller = select.poll()
            for pidfd in self._running:
                poller.register(pidfd, select.POLLIN)
            for pidfd, _event in poller.poll(max(0.0, wake) * 1000):
                ended.append(self._reap(self._running.pop(pidfd)))
        return ended

    def _reap(self, run: _Running) -> tuple[str, dict[str, Any]]:
        _, status, usage = os.wait4(run.pid, 0)
        seconds = time.monotonic() - run.started
        os.close(run.pidfd)
        returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return run.key, {"returncode": returncode, "timed_out": run.timed_out, "seconds": round(seconds, 4),
                         "stderr": _tail(run.out), "vm_peak": run.vm_peak,
                         "rss_peak": usage.ru_maxrss * 1024, "cpu": round(usage.ru_utime + usage.ru_stime, 3)}

    def kill_all(self) -> None:
        for run in list(self._running.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(run.pid, signal.SIGKILL)
            self._reap(self._running.pop(run.pidfd))


def _become(work: Callable[[], dict[str, Any]], result: Path, out: int, cpu_seconds: int, parent: int,
            started: float) -> None:
    """The forked process (never returns)."""
    code = 70
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
            os._exit(code)
        with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
            fh.write(OOM_SCORE_ADJ)
        os.dup2(out, 1)
        os.dup2(out, 2)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)  # only ever lowered: the sandbox's stays the ceiling
        soft = cpu_seconds if hard == resource.RLIM_INFINITY else min(cpu_seconds, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5 if hard == resource.RLIM_INFINITY
                                                 else min(soft + 5, hard)))
        try:
            answer = {"ok": True, **work()}
            code = 0
        except Exception as exc:  # Gmsh/OpenCASCADE errors: the part's problem, in Gmsh's own words
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            print(answer["error"], file=sys.stderr)  # what the limit detection reads (MemoryError, bad_alloc…)
            code = 1
        answer["seconds"] = round(time.monotonic() - started, 4)
        answer["parent"] = parent
        result.write_text(json.dumps(answer))
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _vm_peak(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _tail(out: IO[bytes]) -> str:
    try:
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - TAIL_CHARS * 4))
        text = out.read().decode("utf-8", errors="replace")[-TAIL_CHARS:]
    except OSError:
        text = ""
    finally:
        out.close()
    return text
