"""Parent side of the Gmsh children: one request file, one sandboxed child under a timeout, one answer.

The child runs through :mod:`validibot_pipelines.runtime.sandbox.warm`: forked from the lane's warm sandbox
(Gmsh already imported, :data:`~validibot_pipelines.validators.mesh.worker.child.PRELOAD`) when this thread is a
worker lane, else a cold sandboxed process. Whatever it leaves is read back only with the sandbox's checks
(:func:`~validibot_pipelines.runtime.sandbox.read_result` / ``copy_result``: no links, size caps), also the
files of the processes it forked (:meth:`ChildAnswer.read_json`, :meth:`ChildAnswer.copy_out`).

Also defines :class:`MeshFailure`, the one way the meshing code reports a problem: a stable code, a sentence
naming the file, the problem and the fix, and whose fault it is (the part's → failed_validation, the system's
→ failed_runtime). The envelope runners and the Modal functions both turn it into their own result format.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage
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
from validibot_pipelines.runtime.sandbox.limits import cpu_seconds, which_limit
from validibot_pipelines.runtime.sandbox.warm import Workspace, run_python, workspace

CHILD_MODULE = "validibot_pipelines.validators.mesh.worker.child"
OUTPUT_KEYS = ("msh", "preview")  # request keys naming files the child writes
INPUT_KEYS = ("part",)  # request keys naming files the child reads (besides the list under "inputs")
MAX_ANSWER_BYTES = 16 * 1024 * 1024
TAIL_CHARS = 8000
#: The limits of the envelope this thread runs (batch lanes run several envelopes at once).
_limits: ContextVar[SandboxLimits | None] = ContextVar("validibot_mesh_limits", default=None)
_counter = itertools.count()
_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


class MeshFailure(Exception):
    """``outputs``: what was still found (e.g. the volumes that did mesh, and every attempt), kept in the
    envelope so a partial failure shows its good half; ``notes``: INFO lines (what was tried on the way)."""

    def __init__(self, code: str, text: str, *, system_fault: bool = False, outputs: dict[str, Any] | None = None,
                 notes: list[tuple[str, str]] | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.system_fault = system_fault
        self.outputs = outputs
        self.notes = notes or []


def engine_unavailable(name: str, answer: ChildAnswer) -> MeshFailure:
    return MeshFailure("MESH_ENGINE_UNAVAILABLE", f"{name}: Gmsh could not be loaded in this worker "
                       f"({answer.problem}); the worker image lacks a system library Gmsh needs — rebuild it with "
                       "containers/apt-mesh.txt (or install those Debian packages)", system_fault=True)


def fail(ctx: RunContext, exc: MeshFailure) -> None:
    """Record a :class:`MeshFailure` on the output envelope being built."""
    ctx.output.status = Status.FAILED_RUNTIME if exc.system_fault else Status.FAILED_VALIDATION
    if exc.outputs is not None:
        ctx.output.outputs = exc.outputs
    info(ctx, exc.notes)
    ctx.output.error(exc.code, exc.text)


def info(ctx: RunContext, notes: list[tuple[str, str]]) -> None:
    """``(code, text)`` notes as INFO messages of the output envelope."""
    ctx.output.messages.extend(ValidationMessage(severity=Severity.INFO, code=code, text=text)
                               for code, text in notes)


@dataclass
class ChildAnswer:
    ok: bool
    data: dict[str, Any]
    child: ChildResult
    #: The child's folder: valid until the next call of this thread (a lane reuses its folder).
    scratch: Path | None = None

    def read_json(self, name: str) -> dict[str, Any] | None:
        """A JSON object the child (or a process it forked) left in its folder, read with the sandbox's checks:
        ``None`` when there is none, ``{"ok": False, "error": ...}`` when it is unusable."""
        if self.scratch is None:
            return None
        try:
            data = json.loads(read_result(self.scratch, self.scratch / name, MAX_ANSWER_BYTES))
        except FileNotFoundError:
            return None
        except (UnsafeResult, ValueError) as exc:
            return {"ok": False, "error": f"the Gmsh process left an unusable result ({exc})"}
        if not isinstance(data, dict):
            return {"ok": False, "error": "the Gmsh process left an unusable result (not a JSON object)"}
        return data

    def copy_out(self, name: str, dest: Path) -> Path:
        """Copy a file the child left to ``dest`` (no links, at most ``max_file_bytes``); raises
        :class:`UnsafeResult` or ``FileNotFoundError``."""
        if self.scratch is None:
            raise FileNotFoundError(name)
        return copy_result(self.scratch, self.scratch / name, dest, limits().max_file_bytes)

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


def forked_answer(record: Any, result: dict[str, Any] | None, timeout: float, mode: str) -> ChildAnswer:
    """A forked process's :class:`ChildAnswer`, from the child's record of how it ended and the result file it
    wrote, with the limit detection of a sandboxed process of its own."""
    try:
        returncode = int(record["returncode"])
        timed_out = bool(record["timed_out"])
        seconds = max(0.0, float(record["seconds"]))
        stderr = str(record.get("stderr", ""))[-TAIL_CHARS:]
        vm_peak, cpu = int(record.get("vm_peak", 0)), float(record.get("cpu", 0.0))
    except (KeyError, TypeError, ValueError, AttributeError):
        broken = SandboxResult(returncode=None, timed_out=False, pid=0, stdout="", stderr="", seconds=0.0,
                               mode=mode, limits=limits())
        return ChildAnswer(ok=False, data={"error": "the Gmsh process left an unusable record of the candidate"},
                           child=broken)
    limit = None
    if returncode != 0 and not timed_out:
        # Only the child (at the deadline: timed_out), the kernel (RLIMIT_CPU's hard limit, or the OOM killer
        # when the sandbox's memory cgroup is full) or the sandbox's end send a candidate SIGKILL.
        oom = returncode == -signal.SIGKILL and cpu < 0.95 * cpu_seconds(limits(), timeout)
        limit = which_limit(signum=-returncode if returncode < 0 else None, text=stderr, peak_vm_bytes=vm_peak,
                            cpu_used=cpu, limits=limits(), timeout=timeout, pids_max_hit=False, oom_killed=oom)
    child = SandboxResult(returncode=returncode, timed_out=timed_out, pid=0, stdout="", stderr=stderr,
                          seconds=seconds, mode=mode, limit=limit, limits=limits())
    data = {} if timed_out or result is None else result
    return ChildAnswer(ok=bool(data.get("ok")) and returncode == 0, data=data, child=child)


def set_limits(limits: SandboxLimits) -> None:
    """The sandbox limits of the envelope being run; every Gmsh child this thread starts gets them."""
    _limits.set(limits)


def limits() -> SandboxLimits:
    return _limits.get() or SandboxLimits()


def call(mode: str, request: dict[str, Any], workdir: Path, timeout: float) -> ChildAnswer:
    """Run one Gmsh child in its own sandbox (or forked from the lane's warm one).

    Every call gets a fresh folder: the part and earlier meshes are visible read-only (bound where they are,
    or copied in for a warm sandbox), the files it must produce (``msh``, ``preview``) are written there and
    copied out to the requested paths only after checks (no links, size-capped).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    space = workspace(workdir, f"{mode}-{next(_counter)}")
    scratch = space.scratch
    wanted = {key: Path(request[key]) for key in OUTPUT_KEYS if key in request}
    inside = {**request, "mode": mode, **{key: str(scratch / path.name) for key, path in wanted.items()}}
    for key in INPUT_KEYS:
        if key in request:
            inside[key] = str(space.add_input(Path(request[key])))
    if "inputs" in request:
        inside["inputs"] = [str(space.add_input(Path(p))) for p in request["inputs"]]
    path = scratch / "request.json"
    path.write_text(json.dumps(inside))
    child = _run(space, [str(path)], timeout)
    data: dict[str, Any] = {}
    if not child.timed_out:
        try:
            data = json.loads(read_result(scratch, path.with_name(path.name + ".result.json"), MAX_ANSWER_BYTES))
            for target in wanted.values():
                if isinstance(data, dict) and data.get("ok") and (scratch / target.name).exists():
                    copy_result(scratch, scratch / target.name, target, limits().max_file_bytes)
        except FileNotFoundError:
            data = {}
        except (UnsafeResult, ValueError) as exc:
            data = {"ok": False, "error": f"the Gmsh process left an unusable result ({exc})"}
    if not isinstance(data, dict):
        data = {"ok": False, "error": "the Gmsh process left an unusable result (not a JSON object)"}
    return ChildAnswer(ok=bool(data.get("ok")) and child.returncode == 0, data=data, child=child, scratch=scratch)


def _run(space: Workspace, args: list[str], timeout: float) -> SandboxResult:
    """The child, confined: forked from the lane's warm sandbox inside a lane, else a cold sandboxed process
    (tracked, so :func:`kill_all` can stop it from another thread)."""
    if space.lane is not None:
        return run_python(CHILD_MODULE, args, workspace=space, timeout=timeout, limits=limits())
    proc_seen: list[subprocess.Popen] = []

    def track(proc: subprocess.Popen) -> None:
        proc_seen.append(proc)
        with _live_lock:
            _live.add(proc)

    try:
        return run_untrusted([sys.executable, "-m", CHILD_MODULE, *args], scratch=space.scratch, timeout=timeout,
                             limits=limits(), readonly=space.inputs, on_start=track)
    finally:
        with _live_lock:
            _live.difference_update(proc_seen)


def limit_failure_of(name: str, answer: ChildAnswer) -> MeshFailure | None:
    """A :class:`MeshFailure` (``MESH_MEMORY_LIMIT``…) when the child was stopped by a sandbox limit."""
    found = (limit_failure(answer.child, "MESH", name, who="Gmsh/OpenCASCADE reading the part")
             if isinstance(answer.child, SandboxResult) else None)
    return MeshFailure(*found) if found else None


def kill_all() -> None:
    """Stop every cold Gmsh child still running (from any thread): for a worker that is being stopped (a warm
    sandbox dies with its lane, and with the worker through PDEATHSIG)."""
    with _live_lock:
        running = list(_live)
    for proc in running:
        kill_group(proc)
