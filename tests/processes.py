"""Finding the project's throw-away child processes, for the tests that stop a worker mid-run.

Reads ``/proc/<pid>/cmdline`` rather than ``ps``: procps truncates ``args`` to ``$COLUMNS`` when that is set
(as in CI), and a long virtualenv path then pushes the module name off the line, so a ``ps`` search can
silently find nothing and a "no child survived" assertion would pass without proving anything.
"""

from __future__ import annotations

from pathlib import Path


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
