"""Parent side of the Gmsh children: one request file, one child process under a timeout, one answer.

Also defines :class:`MeshFailure`, the one way the meshing code reports a problem: a stable code, a sentence
naming the file, the problem and the fix, and whose fault it is (the part's → failed_validation, the system's
→ failed_runtime). The envelope runners and the Modal functions both turn it into their own result format.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validibot_pipelines.envelopes import Status
from validibot_pipelines.envelopes.base import SandboxLimits
from validibot_pipelines.envelopes.bounds import clip_tail
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.process import ChildResult, kill_group, tail
from validibot_pipelines.runtime.sandbox import (
    SandboxResult,
    UnsafeResult,
    copy_result,
    limit_failure,
    read_result,
    run_untrusted,
)

CHILD_MODULE = "validibot_pipelines.validators.mesh.worker.child"
OUTPUT_KEYS = ("msh", "preview")  # request keys naming files the child writes
MAX_ANSWER_BYTES = 16 * 1024 * 1024
_limits = SandboxLimits()
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
        if isinstance(self.child, SandboxResult) and self.child.limit:
            return f"stopped at a sandbox limit: {self.child.limit_text()}"
        if self.child.signal_name:
            return f"the Gmsh process crashed ({self.child.signal_name})"
        if self.data.get("error"):
            return str(self.data["error"])
        return (f"the Gmsh process exited with code {self.child.returncode}: "
                f"{clip_tail(tail(self.child.stderr, 3), 1500) or 'no output'}")


def set_limits(limits: SandboxLimits) -> None:
    """The sandbox limits of the envelope being run; every Gmsh child of this worker gets them."""
    global _limits
    _limits = limits


def call(mode: str, request: dict[str, Any], workdir: Path, timeout: float) -> ChildAnswer:
    """Run one Gmsh child in its own sandbox; thread-safe, so volumes can fan out.

    Every call gets a fresh scratch folder: the part and earlier meshes are visible read-only, the files it must
    produce (``msh``, ``preview``) are written there and copied out to the requested paths only after checks
    (no links, size-capped) — one candidate can never touch another's results.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = workdir / f"{mode}-{next(_counter)}"
    scratch.mkdir()
    wanted = {key: Path(request[key]) for key in OUTPUT_KEYS if key in request}
    inside = {**request, "mode": mode, **{key: str(scratch / path.name) for key, path in wanted.items()}}
    readonly = [Path(request["part"])] if "part" in request else []
    readonly += [Path(p) for p in request.get("inputs", [])]
    path = scratch / "request.json"
    path.write_text(json.dumps(inside))
    proc_seen: list[subprocess.Popen] = []

    def track(proc: subprocess.Popen) -> None:
        proc_seen.append(proc)
        with _live_lock:
            _live.add(proc)

    try:
        child = run_untrusted([sys.executable, "-m", CHILD_MODULE, str(path)], scratch=scratch, timeout=timeout,
                              limits=_limits, readonly=readonly, on_start=track)
    finally:
        with _live_lock:
            _live.difference_update(proc_seen)
    data: dict[str, Any] = {}
    if not child.timed_out:
        try:
            data = json.loads(read_result(scratch, path.with_name(path.name + ".result.json"), MAX_ANSWER_BYTES))
            for target in wanted.values():
                if data.get("ok") and (scratch / target.name).exists():
                    copy_result(scratch, scratch / target.name, target, _limits.max_file_bytes)
        except FileNotFoundError:
            data = {}
        except (UnsafeResult, ValueError) as exc:
            data = {"ok": False, "error": f"the Gmsh process left an unusable result ({exc})"}
    if not isinstance(data, dict):
        data = {"ok": False, "error": "the Gmsh process left an unusable result (not a JSON object)"}
    return ChildAnswer(ok=bool(data.get("ok")) and child.returncode == 0, data=data, child=child)


def limit_failure_of(name: str, answer: ChildAnswer) -> MeshFailure | None:
    """A :class:`MeshFailure` (``MESH_MEMORY_LIMIT``…) when the child was stopped by a sandbox limit."""
    found = (limit_failure(answer.child, "MESH", name, who="Gmsh/OpenCASCADE reading the part")
             if isinstance(answer.child, SandboxResult) else None)
    return MeshFailure(*found) if found else None


def kill_all() -> None:
    """Stop every Gmsh child still running (from any thread): used when the worker itself is being stopped."""
    with _live_lock:
        running = list(_live)
    for proc in running:
        kill_group(proc)
