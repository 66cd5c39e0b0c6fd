"""A worker session's client: one worker process that serves a validation's batch launches in turn.

Its own module, light to import (no envelopes, no pydantic): ``validibot validate`` starts the worker before it
imports anything else, so the worker's start-up and its sandboxes' overlap the command's own
(``runtime/session.py`` is the worker's side).
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
from dataclasses import dataclass, field
from typing import Any

from validibot_pipelines.runtime.process import ChildResult
from validibot_pipelines.runtime.session import END_MARK, ENV_SESSION, ENV_WARM

WORKER_MODULE = "validibot_pipelines.runtime"


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
    env: dict[str, str] = field(default_factory=dict)  # more variables for the worker (e.g. its lanes)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _draining: subprocess.Popen | None = field(default=None, init=False, repr=False)  # being stopped: its lines kept
    _reader: threading.Thread | None = field(default=None, init=False, repr=False)
    _lines: list[str] = field(default_factory=list, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _log_changed: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    @classmethod
    def start(cls, python_executable: str = sys.executable, grace_seconds: float = 5.0,
              warm: tuple[str, ...] = (), env: dict[str, str] | None = None) -> WorkerSession:
        """A running worker; ``warm`` (validator names) has it start its lanes' sandboxes for them at once."""
        session = cls(python_executable, grace_seconds, warm, dict(env or {}))
        session._spawn()
        return session

    def warm_up(self, names: tuple[str, ...]) -> None:
        """Have the running worker import validators ``names``' sandboxed modules into its lanes' sandboxes
        (started bare with ``warm=("-",)``, so their start overlapped the caller's own start-up); no answer."""
        if not names or self._proc is None or self._proc.stdin is None or not self._lock.acquire(blocking=False):
            return
        try:
            self._proc.stdin.write(json.dumps({"warm": list(names)}) + "\n")
            self._proc.stdin.flush()
        except OSError:  # the worker is gone: the next launch starts a new one
            pass
        finally:
            self._lock.release()

    def _spawn(self) -> None:
        self._lines = []
        self._proc = subprocess.Popen(
            [self.python_executable, "-m", WORKER_MODULE],
            env={**os.environ, **self.env, ENV_SESSION: "1", **({ENV_WARM: ",".join(self.warm)} if self.warm else {})},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
            start_new_session=True, bufsize=1)
        self._reader = threading.Thread(target=self._read_stderr, args=(self._proc,), daemon=True,
                                        name="validibot-session-log")
        self._reader.start()

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._log_changed:
                if proc is self._proc or proc is self._draining:
                    self._lines.append(line.rstrip("\n"))
                self._log_changed.notify_all()

    def run(self, manifest: str, *, run_id: str, pipes: dict[str, str], timeout: float) -> ChildResult | None:
        """The batch ``manifest`` on this worker: like ``run_child`` on a fresh one (exit code, log, timeout);
        ``None`` when the worker is serving another launch right now."""
        return self._request({"manifest": manifest, "run_id": run_id, "pipes": pipes}, timeout)

    def run_input(self, input_uri: str, *, run_id: str, pipes: dict[str, str], timeout: float) -> ChildResult | None:
        """One input envelope on this worker, as a ``VALIDIBOT_INPUT_URI`` launch (every log line through
        ``pipes``), its model forked from the first lane's warm sandbox; ``None`` as for :meth:`run`."""
        return self._request({"input": input_uri, "run_id": run_id, "pipes": pipes}, timeout)

    def _request(self, request: dict[str, Any], timeout: float) -> ChildResult | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._serve(request, timeout)
        finally:
            self._lock.release()

    def _serve(self, request: dict[str, Any], timeout: float) -> ChildResult:
        if self._proc is None or self._proc.poll() is not None:
            self._spawn()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        begin, start = len(self._lines), time.monotonic()
        reply: dict[str, Any] | None = None
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            if select.select([proc.stdout], [], [], timeout)[0]:
                line = proc.stdout.readline()
                reply = json.loads(line) if line.strip() else None
        except (OSError, ValueError):
            reply = None
        seconds = time.monotonic() - start
        if reply is None or "returncode" not in reply:  # timed out, or the worker died or misbehaved
            timed_out = proc.poll() is None and seconds >= timeout
            self._draining, reader = proc, self._reader
            self.stop(busy=True)
            if reader is not None:  # what it wrote up to its end, as a fresh worker's log keeps it
                reader.join(timeout=1)
            self._draining = None
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
