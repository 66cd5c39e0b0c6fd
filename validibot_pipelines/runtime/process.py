"""Run a child process with a hard timeout: terminate, a grace period, then kill.

Shared by every runner that executes untrusted native code (FMU binaries, EnergyPlus): one fresh process
per run, because some FMUs corrupt or crash their host after many runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

GRACE_SECONDS = 5.0


@dataclass
class ChildResult:
    returncode: int | None
    timed_out: bool
    pid: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def signal_name(self) -> str | None:
        if self.returncode is not None and self.returncode < 0:
            try:
                return signal.Signals(-self.returncode).name
            except ValueError:
                return f"signal {-self.returncode}"
        return None


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run_child(
    cmd: list[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    grace: float = GRACE_SECONDS,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> ChildResult:
    """Run ``cmd`` in its own process group; on timeout SIGTERM the group, wait ``grace``, then SIGKILL.

    ``on_start`` receives the process as soon as it exists, for callers that run several children from threads
    and must be able to stop them all at once (see :func:`kill_group`).
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    if on_start is not None:
        on_start(proc)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(proc, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            out, err = proc.communicate()
    except BaseException:
        # We are being stopped (SIGTERM → SystemExit, Ctrl-C): never leave the child running on its own.
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        raise
    return ChildResult(proc.returncode, timed_out, proc.pid, out or "", err or "", time.monotonic() - start)


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL the child if its parent dies, even by SIGKILL (no orphaned FMU loops)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def install_sigterm_exit() -> None:
    """Turn SIGTERM into SystemExit so ``run_child``'s cleanup runs when a backend stops the worker."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a child started by :func:`run_child` together with its process group."""
    _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
