"""Parent side of the Gmsh children: one request file, one child process under a timeout, one answer.

Also defines :class:`MeshFailure`, the one way the meshing code reports a problem: a stable code, a sentence
naming the file, the problem and the fix, and whose fault it is (the part's → failed_validation, the system's
→ failed_runtime). The envelope runners and the Modal functions both turn it into their own result format.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validibot_pipelines.envelopes import Status
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.process import ChildResult, kill_group, run_child, tail

CHILD_MODULE = "validibot_pipelines.runtime.mesh.child"
#: The folder holding the ``validibot_pipelines`` package: children run in a scratch cwd, so images that ship
#: the source tree rather than an installed package (Modal's ``add_local_python_source``) still import it.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
_counter = itertools.count()
_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


class MeshFailure(Exception):
    def __init__(self, code: str, text: str, *, system_fault: bool = False) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.system_fault = system_fault


def engine_unavailable(name: str, answer: ChildAnswer) -> MeshFailure:
    return MeshFailure("MESH_ENGINE_UNAVAILABLE", f"{name}: Gmsh could not be loaded in this worker "
                       f"({answer.problem}); the worker image lacks a system library Gmsh needs — rebuild it with "
                       "containers/apt-mesh.txt (or install those Debian packages)", system_fault=True)


def fail(ctx: RunContext, exc: MeshFailure) -> None:
    """Record a :class:`MeshFailure` on the output envelope being built."""
    ctx.output.status = Status.FAILED_RUNTIME if exc.system_fault else Status.FAILED_VALIDATION
    ctx.output.error(exc.code, exc.text)


@dataclass
class ChildAnswer:
    ok: bool
    data: dict[str, Any]
    child: ChildResult

    @property
    def engine_broken(self) -> bool:
        """Gmsh itself could not be loaded (a missing system library): the worker's fault, not the part's."""
        return bool(self.data.get("engine_broken"))

    @property
    def problem(self) -> str:
        """Why the child did not answer ok, in words a user can act on."""
        if self.child.timed_out:
            return f"timed out after {self.child.seconds:.1f} s"
        if self.child.signal_name:
            return f"the Gmsh process crashed ({self.child.signal_name})"
        if self.data.get("error"):
            return str(self.data["error"])
        return f"the Gmsh process exited with code {self.child.returncode}: {tail(self.child.stderr, 3) or 'no output'}"


def call(mode: str, request: dict[str, Any], workdir: Path, timeout: float) -> ChildAnswer:
    """Run one Gmsh child; thread-safe (every call gets its own request file), so volumes can fan out."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{mode}-{next(_counter)}.json"
    path.write_text(json.dumps({**request, "mode": mode}))
    proc_seen: list[subprocess.Popen] = []

    def track(proc: subprocess.Popen) -> None:
        proc_seen.append(proc)
        with _live_lock:
            _live.add(proc)

    try:
        child = run_child([sys.executable, "-m", CHILD_MODULE, str(path)], timeout=timeout, cwd=workdir,
                          env=_child_env(), on_start=track)
    finally:
        with _live_lock:
            _live.difference_update(proc_seen)
    result_path = path.with_name(path.name + ".result.json")
    data: dict[str, Any] = {}
    if result_path.exists() and not child.timed_out:
        data = json.loads(result_path.read_text())
    return ChildAnswer(ok=bool(data.get("ok")) and child.returncode == 0, data=data, child=child)


def _child_env() -> dict[str, str]:
    paths = [PACKAGE_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def kill_all() -> None:
    """Stop every Gmsh child still running (from any thread): used when the worker itself is being stopped."""
    with _live_lock:
        running = list(_live)
    for proc in running:
        kill_group(proc)
