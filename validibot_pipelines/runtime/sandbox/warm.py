"""Warm sandboxes: a sandboxed parent that has already imported fmpy/numpy forks one fresh child per model.

Why: a cold sandboxed child pays bubblewrap, the interpreter and its imports (about 0.4 s for fmpy) for a
simulation that may take 5 ms. In a batch (:mod:`validibot_pipelines.runtime.batch`) each worker lane keeps one
sandbox whose parent is :mod:`.zygote`; every model still runs in a child of its own, started by ``fork`` from
that parent, with its own rlimits, keyring, session and folder, and everything it started is killed before the
next model's child exists. What the models of one lane share is the sandbox *instance* (the same namespaces,
one after the other), never a moment in it, and never a file: the lane's folder and the sandbox's ``/tmp`` are
emptied between models. A model that kills the parent fails alone; the lane starts a new sandbox for the next.

Runners do not choose: they ask :func:`workspace` for a folder and call :func:`run_python`; inside a lane that
is the warm path, elsewhere the cold one (:func:`~validibot_pipelines.runtime.sandbox.run_untrusted`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from validibot_pipelines.envelopes.base import SandboxLimits
from validibot_pipelines.runtime import sandbox
from validibot_pipelines.runtime.sandbox import bwrap
from validibot_pipelines.runtime.sandbox.limits import (
    SandboxCgroup,
    _processes_of_current_user,
    cpu_seconds,
    preexec,
    which_limit,
)

ZYGOTE_MODULE = "validibot_pipelines.runtime.sandbox.zygote"
#: Room for the warm parent itself (interpreter, numpy, fmpy) above the model's own memory limit.
PARENT_MEMORY_BYTES = 512 * 1024 * 1024
#: A sandbox serves a whole batch; its parent's own CPU budget (the children get the job's).
PARENT_CPU_SECONDS = 7 * 24 * 3600
START_TIMEOUT = 120.0
#: Beyond the job's timeout and grace: how long the launcher waits for the parent's word before it kills the
#: whole sandbox (a model that stopped the parent with SIGSTOP, say).
REPLY_MARGIN = 30.0

_LANE: ContextVar[Lane | None] = ContextVar("validibot_lane", default=None)
_SPAWNER: ThreadPoolExecutor | None = None


def _spawn(start: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    """``start()`` on one long-lived thread of this process.

    Why: the warm parent asks the kernel to kill it when its parent goes (``PR_SET_PDEATHSIG``), and for the
    kernel that parent is the *thread* that forked it. Started from a batch's lane thread, the sandbox died
    with that thread at the end of every batch, so a worker session (``runtime/session.py``) paid a new
    sandbox and its imports in each round. Started here, it lives as long as the worker process.
    """
    global _SPAWNER
    if _SPAWNER is None:
        _SPAWNER = ThreadPoolExecutor(1, thread_name_prefix="validibot-sandbox-spawner")
    return _SPAWNER.submit(start).result()


@dataclass
class Workspace:
    """Where one sandboxed run's files live: ``scratch`` (writable, its cwd) and its read-only inputs."""

    scratch: Path
    lane: Lane | None = None
    inputs: list[Path] = field(default_factory=list)

    def add_input(self, path: Path) -> Path:
        """Make ``path`` visible to the child and return the path the child sees it under.

        Cold: bound read-only where it is. Warm: copied into the workspace (a running sandbox gets no new
        mounts), so no model ever sees another model's files.
        """
        if self.lane is None:
            self.inputs.append(path)
            return path
        folder = self.scratch / "inputs" / str(len(self.inputs))
        folder.mkdir(parents=True)
        copy = folder / path.name
        shutil.copyfile(path, copy)
        self.inputs.append(copy)
        return copy


def workspace(workdir: Path, name: str = "sandbox") -> Workspace:
    """A fresh folder for one sandboxed run: in the lane's sandbox when a lane is active, else ``workdir/name``.

    In a lane the previous run's folder is deleted here: a runner reads its child's results before it asks for
    the next workspace.
    """
    lane = _LANE.get()
    if lane is None:
        scratch = workdir / name
        scratch.mkdir(parents=True)
        return Workspace(scratch)
    return lane.workspace()


def run_python(module: str, args: list[str], *, workspace: Workspace, timeout: float,
               limits: SandboxLimits | None = None, env: dict[str, str] | None = None,
               grace: float = sandbox.GRACE_SECONDS) -> sandbox.SandboxResult:
    """``python -m module *args`` confined: forked from the lane's warm parent, or a cold sandboxed process.

    ``module`` must define ``main()`` (it runs as ``python -m`` would run it) and may list ``PRELOAD``: modules
    the warm parent imports before forking.
    """
    limits = limits or SandboxLimits()
    if workspace.lane is not None:
        return workspace.lane.run(module, args, workspace=workspace, timeout=timeout, limits=limits, env=env,
                                  grace=grace)
    return sandbox.run_untrusted([sys.executable, "-m", module, *args], scratch=workspace.scratch, timeout=timeout,
                                 limits=limits, readonly=workspace.inputs, env=env, grace=grace)


@contextlib.contextmanager
def lane() -> Iterator[Lane]:
    """Make this thread a worker lane: sandboxed runs in it are forked from one warm sandbox (started on first
    use, stopped on exit)."""
    current = Lane()
    token = _LANE.set(current)
    try:
        yield current
    finally:
        _LANE.reset(token)
        current.close()


@contextlib.contextmanager
def using(existing: Lane) -> Iterator[Lane]:
    """Make this thread serve ``existing`` (a worker session's lane, kept across batches); not stopped on exit."""
    token = _LANE.set(existing)
    try:
        yield existing
    finally:
        _LANE.reset(token)


class Lane:
    """One warm sandbox and the folder it may write, serving one model at a time."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="validibot-lane-")).resolve()
        self.jobs = 0
        self.starts = 0
        self._proc: subprocess.Popen | None = None
        self._limits: SandboxLimits | None = None
        self._group: SandboxCgroup | None = None
        self._stderr: IO[bytes] | None = None
        self._mode = ""
        self.silent = False
        self._busy = threading.Lock()  # a prestart (another thread) and the lane's first job take turns

    # --- folders ---------------------------------------------------------------------------------------------

    def workspace(self) -> Workspace:
        self._empty_root()
        return Workspace(Path(tempfile.mkdtemp(prefix="job-", dir=self.root)), lane=self)

    def _empty_root(self) -> None:
        """The previous run's files leave the lane's folder now (renamed out of it; deleted in the background,
        ``runtime/trash.py``), so the next model's child never sees them."""
        from validibot_pipelines.runtime import trash
        from validibot_pipelines.runtime.entrypoint import remove_tree

        for entry in os.scandir(self.root):
            trash.discard(Path(entry.path), self.root.parent, lambda path: remove_tree(path, lambda _msg: None))

    # --- the warm parent -------------------------------------------------------------------------------------

    def _start(self, limits: SandboxLimits) -> None:
        self.close_parent()
        self._mode = sandbox.mode()
        parent_limits = limits.model_copy(update={
            "memory_bytes": limits.memory_bytes + PARENT_MEMORY_BYTES, "max_processes": limits.max_processes + 3,
            "cpu_seconds": PARENT_CPU_SECONDS})
        self._group = SandboxCgroup(parent_limits.max_processes, parent_limits.memory_bytes)
        extra = {"VALIDIBOT_ZYGOTE_WIPE": "1"} if self._mode == "bwrap" else {}
        env = bwrap.sandbox_env(self.root, extra)
        # No module names on the parent's command line: the first job imports them (process listings that look
        # for a model's child by its module name must not mistake the waiting parent for one).
        cmd = [sys.executable, "-m", ZYGOTE_MODULE]
        argv = bwrap.command(cmd, scratch=self.root, env=env) if self._mode == "bwrap" else cmd
        self._stderr = tempfile.TemporaryFile()
        stderr, group = self._stderr, self._group
        self._proc = _spawn(lambda: subprocess.Popen(
            argv, cwd=self.root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            start_new_session=True, preexec_fn=preexec(parent_limits, PARENT_CPU_SECONDS, group)))
        self._limits = limits
        self.starts += 1
        ready = self._reply(START_TIMEOUT)
        if not ready or not ready.get("ready"):
            why = self._parent_log()
            self.close_parent()
            raise RuntimeError(f"the warm sandbox did not start: {why[-1500:] or 'no output'}")

    def _reply(self, timeout: float) -> dict | None:
        """The parent's next JSON line, or ``None`` if it died or stayed silent for ``timeout`` seconds (then
        ``self.silent`` is set)."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        self.silent = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.silent = True
                return None
            line = self._proc.stdout.readline()
            if not line:
                return None
            try:
                return json.loads(line)
            except ValueError:
                return None

    def _parent_log(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-8000:].decode("utf-8", errors="replace")

    def prestart(self, limits: SandboxLimits, modules: list[str]) -> None:
        """Start the warm parent now (unless it runs), for jobs with ``limits``, and have it import ``modules``
        (a worker session does this while the control plane still checks the files). Nothing is forked; a job
        with other limits later starts a new parent as usual. Raises if the sandbox cannot start."""
        with self._busy:
            if self._proc is None or self._proc.poll() is not None:
                self._start(limits)
            if not modules:
                return
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write((json.dumps({"warm": modules}) + "\n").encode())
            self._proc.stdin.flush()
            reply = self._reply(START_TIMEOUT)
            if not reply or not reply.get("warm"):
                why = (reply or {}).get("error") or self._parent_log()[-1500:] or "no answer"
                self.close_parent()
                raise RuntimeError(f"the warm sandbox did not import {', '.join(modules)}: {why}")

    def run(self, module: str, args: list[str], *, workspace: Workspace, timeout: float, limits: SandboxLimits,
            env: dict[str, str] | None, grace: float) -> sandbox.SandboxResult:
        """Fork one child of the warm parent for ``module`` and wait for it (see the module docstring)."""
        with self._busy:
            return self._run(module, args, workspace=workspace, timeout=timeout, limits=limits, env=env,
                             grace=grace)

    def _run(self, module: str, args: list[str], *, workspace: Workspace, timeout: float, limits: SandboxLimits,
             env: dict[str, str] | None, grace: float) -> sandbox.SandboxResult:
        if self._proc is None or self._proc.poll() is not None or self._limits != limits:
            self._start(limits)
        assert self._proc is not None and self._proc.stdin is not None and self._group is not None
        scratch = workspace.scratch
        nproc = None if os.getuid() == 0 else _processes_of_current_user() + limits.max_processes
        job = {"module": module, "argv": args, "cwd": str(scratch), "env": bwrap.sandbox_env(scratch, env),
               "timeout": timeout, "grace": grace,
               "limits": {"as": limits.memory_bytes, "cpu": cpu_seconds(limits, timeout),
                          "fsize": limits.max_file_bytes, "nofile": limits.max_open_files, "nproc": nproc}}
        before = self._group.counters()
        start = time.monotonic()
        self.jobs += 1
        try:
            self._proc.stdin.write((json.dumps(job) + "\n").encode())
            self._proc.stdin.flush()
            reply = self._reply(timeout + grace + REPLY_MARGIN)
        except (BrokenPipeError, OSError):
            reply = None
        seconds = time.monotonic() - start
        pids_hits, oom = (after - first for after, first in zip(self._group.counters(), before, strict=True))
        if reply is None or "error" in reply:  # the model took the parent down with it (or stopped it)
            timed_out = reply is None and self.silent
            self.close_parent()
            note = (reply or {}).get("error") or ("the sandbox stopped answering and was killed" if timed_out
                                                  else "the model's process killed the sandbox's parent")
            return sandbox.SandboxResult(
                returncode=-signal.SIGKILL, timed_out=timed_out, pid=0, stdout="", stderr=note, seconds=seconds,
                mode=f"{self._mode}+warm", limit="memory" if oom else None, limits=limits)
        returncode = int(reply["returncode"])
        limit = None
        if returncode != 0 and not reply["timed_out"]:
            limit = which_limit(signum=-returncode if returncode < 0 else None, text=reply["stderr"][-8000:],
                                peak_vm_bytes=int(reply["vm_peak"]), cpu_used=float(reply["cpu"]), limits=limits,
                                timeout=timeout, pids_max_hit=pids_hits > 0, oom_killed=oom > 0,
                                peak_rss_bytes=int(reply["rss_peak"]))
        return sandbox.SandboxResult(
            returncode=returncode, timed_out=bool(reply["timed_out"]), pid=int(reply["pid"]),
            stdout=reply["stdout"], stderr=reply["stderr"], seconds=float(reply["seconds"]),
            mode=f"{self._mode}+warm", limit=limit, peak_memory_bytes=int(reply["rss_peak"]), limits=limits)

    def close_parent(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
        if self._group is not None:
            self._group.remove()
            self._group = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        self.close_parent()
        from validibot_pipelines.runtime.entrypoint import remove_tree

        remove_tree(self.root, lambda _msg: None)
