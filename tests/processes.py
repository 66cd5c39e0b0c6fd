"""Finding the project's throw-away child processes, for the tests that stop a worker mid-run.

Reads ``/proc/<pid>/cmdline`` rather than ``ps``: procps truncates ``args`` to ``$COLUMNS`` when that is set
(as in CI), and a long virtualenv path then pushes the module name off the line, so a ``ps`` search can
silently find nothing and a "no child survived" assertion would pass without proving anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def processes_running(module: str) -> list[str]:
    """Command lines of live processes started as ``python -m MODULE`` (zombies have no cmdline and are skipped)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if module.encode() in argv:
            found.append(f"{proc.name} " + " ".join(a.decode(errors="replace") for a in argv if a))
    return found


def stop_while_a_child_runs(launch: Callable[[float], T], module: str, timeouts: Sequence[float]) -> T:
    """``launch(timeout)`` (a worker the backend stops at ``timeout``) retried with the next, longer timeout
    until a ``python -m MODULE`` child was running when the stop happened; its result.

    The stop only proves something if a child was there to stop, and a loaded machine may need longer than
    the first timeout just to start Python and import the engine: retry longer rather than weaken the test.
    """
    for timeout in timeouts:
        launched: list[T] = []
        runner = threading.Thread(target=lambda t=timeout, into=launched: into.append(launch(t)))
        runner.start()
        seen: list[str] = []
        while runner.is_alive() and not seen:
            seen = processes_running(module)
            time.sleep(0.05)
        runner.join()
        if seen:
            return launched[0]
    raise AssertionError(f"the worker never started a {module} child; the test proves nothing")


def assert_none_left(module: str, within: float) -> None:
    """No ``python -m MODULE`` process remains ``within`` seconds (time for the killed ones to be reaped)."""
    deadline = time.time() + within
    while processes_running(module) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_running(module) == []
