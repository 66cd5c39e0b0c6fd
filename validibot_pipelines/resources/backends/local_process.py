"""The local backend's launches without Dagster: a worker subprocess for one envelope or a batch of them.

:class:`LocalProcessLauncher` is what ``validibot validate`` uses directly (no Dagster import at start-up) and
what :class:`~validibot_pipelines.resources.backends.local.LocalSubprocessBackend` — the Dagster resource —
calls, adding a Dagster Pipes session around it when a step's context is given (``pipes_env``). Given a
:class:`WorkerSession`, its batch launches go to one worker process that stays up between them (the probe
round and the simulation round of the same models, ``runtime/session.py``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from validibot_pipelines import __version__
from validibot_pipelines.envelopes.base import now
from validibot_pipelines.resources.backends.base import LaunchRecord, batch_records
from validibot_pipelines.runtime.batch import ENV_BATCH, write_manifest
from validibot_pipelines.runtime.entrypoint import ENV_INPUT, ENV_RUN_ID
from validibot_pipelines.runtime.process import ChildResult, run_child, tail
from validibot_pipelines.runtime.session import END_MARK, ENV_SESSION, ENV_WARM

WORKER_MODULE = "validibot_pipelines.runtime"
#: Given a step's context, a context manager yielding the environment variables of its Pipes session.
PipesEnv = Callable[[Any], AbstractContextManager[dict[str, str]]]


def _no_pipes(_context: Any) -> AbstractContextManager[dict[str, str]]:
    return nullcontext({})


@dataclass
class LocalProcessLauncher:
    """Launch ``python -m validibot_pipelines.runtime`` as a child process (one per envelope or per batch)."""

    python_executable: str = sys.executable
    grace_seconds: float = 5.0
    pipes_env: PipesEnv = _no_pipes
    session: WorkerSession | None = None

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        return self._run({ENV_INPUT: input_uri, ENV_RUN_ID: run_id}, timeout_seconds, context)

    def launch_batch(self, input_uris: list[str], *, batch_id: str, timeout_seconds: float,
                     context: Any = None) -> list[LaunchRecord]:
        """One worker process for the whole batch (its envelopes share warm sandboxes, ``runtime/batch.py``)."""
        manifest = write_manifest(input_uris, batch_id)
        record = self._run({ENV_BATCH: manifest, ENV_RUN_ID: batch_id}, timeout_seconds * len(input_uris), context,
                           log_lines=20 * len(input_uris))
        return batch_records(record, input_uris, manifest)

    def _run(self, extra_env: dict[str, str], timeout_seconds: float, context: Any,
             log_lines: int = 20) -> LaunchRecord:
        started = now()
        env = {**os.environ, **extra_env}
        cmd = [self.python_executable, "-m", WORKER_MODULE]
        with (self.pipes_env(context) if context is not None else _no_pipes(None)) as pipes:
            child = None
            if self.session is not None and ENV_BATCH in extra_env:  # None: the session is serving another launch
                child = self.session.run(extra_env[ENV_BATCH], run_id=extra_env.get(ENV_RUN_ID, "-"), pipes=pipes,
                                         timeout=timeout_seconds)
            if child is None:
                child = run_child(cmd, timeout=timeout_seconds, env={**env, **pipes}, grace=self.grace_seconds)
        return LaunchRecord(
            backend="local", launch_id=f"pid:{child.pid}", returncode=child.returncode, timed_out=child.timed_out,
            seconds=round(child.seconds, 4), log_tail=tail(child.stderr, log_lines),
            image=f"{self.python_executable} (validibot-pipelines {__version__})",
            started_at=started, finished_at=now(),
        )


@dataclass
class WorkerSession:
    """One worker process (``VALIDIBOT_WORKER_SESSION=1``) that serves batch launches in turn, keeping its
    lanes' warm sandboxes between them; started at once (:meth:`start`), so it warms up while the control plane
    runs intake. One launch at a time (:meth:`run` declines a second one meanwhile, which then gets a fresh worker
    of its own from the launcher); a launch that
    times out or finds the worker gone stops it, and the next launch starts a new one. ``close`` ends it.
    """

    python_executable: str = sys.executable
    grace_seconds: float = 5.0
    warm: tuple[str, ...] = ()
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _lines: list[str] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _log_changed: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    @classmethod
    def start(cls, python_executable: str = sys.executable, grace_seconds: float = 5.0,
              warm: tuple[str, ...] = ()) -> WorkerSession:
        """A running worker; ``warm`` (validator names) has it start its lanes' sandboxes for them at once."""
        session = cls(python_executable, grace_seconds, warm)
        session._spawn()
        return session

    def _spawn(self) -> None:
        self._lines = []
        self._proc = subprocess.Popen(
            [self.python_executable, "-m", WORKER_MODULE],
            env={**os.environ, ENV_SESSION: "1", **({ENV_WARM: ",".join(self.warm)} if self.warm else {})},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
            start_new_session=True, bufsize=1)
        threading.Thread(target=self._read_stderr, args=(self._proc,), daemon=True,
                         name="validibot-session-log").start()

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._log_changed:
                if proc is self._proc:
                    self._lines.append(line.rstrip("\n"))
                self._log_changed.notify_all()

    def run(self, manifest: str, *, run_id: str, pipes: dict[str, str], timeout: float) -> ChildResult | None:
        """The batch ``manifest`` on this worker: like ``run_child`` on a fresh one (exit code, log, timeout);
        ``None`` when the worker is serving another launch right now."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._serve(manifest, run_id, pipes, timeout)
        finally:
            self._lock.release()

    def _serve(self, manifest: str, run_id: str, pipes: dict[str, str], timeout: float) -> ChildResult:
        if self._proc is None or self._proc.poll() is not None:
            self._spawn()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        begin, start = len(self._lines), time.monotonic()
        reply: dict[str, Any] | None = None
        try:
            proc.stdin.write(json.dumps({"manifest": manifest, "run_id": run_id, "pipes": pipes}) + "\n")
            proc.stdin.flush()
            if select.select([proc.stdout], [], [], timeout)[0]:
                line = proc.stdout.readline()
                reply = json.loads(line) if line.strip() else None
        except (OSError, ValueError):
            reply = None
        seconds = time.monotonic() - start
        if reply is None or "returncode" not in reply:  # timed out, or the worker died or misbehaved
            timed_out = proc.poll() is None and seconds >= timeout
            self.stop(busy=True)
            return ChildResult(proc.returncode if not timed_out else -signal.SIGKILL, timed_out, proc.pid, "",
                               "\n".join(self._lines[begin:]), seconds)
        with self._log_changed:  # the worker marks the end of this manifest's lines before it replies
            self._log_changed.wait_for(lambda: any(END_MARK in line for line in self._lines[begin:]), timeout=5)
            own = [line for line in self._lines[begin:] if END_MARK not in line]
            del self._lines[:]
        return ChildResult(int(reply["returncode"]), False, proc.pid, "", "\n".join(own), seconds)

    def stop(self, busy: bool = False) -> None:
        """Stop the worker: an idle one by end of input (it stops its lanes and exits), a busy one (``busy``: a
        launch timed out) or one that doesn't exit by SIGTERM to its group (the worker cleans up on SIGTERM),
        then SIGKILL after the grace period — as ``run_child`` treats a worker that times out."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            if not busy:
                proc.wait(timeout=self.grace_seconds)
                return
        except (OSError, subprocess.TimeoutExpired):
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=self.grace_seconds)
                return
            except ProcessLookupError:
                proc.wait()
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        self.stop()
