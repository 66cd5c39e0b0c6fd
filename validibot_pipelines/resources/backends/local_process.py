"""The local backend's launches without Dagster: a worker subprocess for one envelope or a batch of them.

:class:`LocalProcessLauncher` is what ``validibot validate`` uses directly (no Dagster import at start-up) and
what :class:`~validibot_pipelines.resources.backends.local.LocalSubprocessBackend` — the Dagster resource —
calls, adding a Dagster Pipes session around it when a step's context is given (``pipes_env``). Given a
:class:`WorkerSession`, its batch launches go to one worker process that stays up between them (the probe
round and the simulation round of the same models, ``runtime/session.py``), and so do its single launches
(a single-model run's probe and simulation).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from validibot_pipelines import __version__
from validibot_pipelines.envelopes.base import now
from validibot_pipelines.resources.backends.base import LaunchRecord, batch_records
from validibot_pipelines.resources.backends.worker_session import WORKER_MODULE, WorkerSession
from validibot_pipelines.runtime.batch import ENV_BATCH, write_manifest
from validibot_pipelines.runtime.entrypoint import ENV_INPUT, ENV_RUN_ID
from validibot_pipelines.runtime.process import run_child, tail

__all__ = ["LocalProcessLauncher", "WorkerSession"]
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
            child = None  # stays None without a session, or when it is serving another launch right now
            run_id = extra_env.get(ENV_RUN_ID, "-")
            if self.session is not None and ENV_BATCH in extra_env:
                child = self.session.run(extra_env[ENV_BATCH], run_id=run_id, pipes=pipes, timeout=timeout_seconds)
            elif self.session is not None and ENV_INPUT in extra_env:
                child = self.session.run_input(extra_env[ENV_INPUT], run_id=run_id, pipes=pipes,
                                               timeout=timeout_seconds)
            if child is None:
                child = run_child(cmd, timeout=timeout_seconds, env={**env, **pipes}, grace=self.grace_seconds)
        return LaunchRecord(
            backend="local", launch_id=f"pid:{child.pid}", returncode=child.returncode, timed_out=child.timed_out,
            seconds=round(child.seconds, 4), log_tail=tail(child.stderr, log_lines),
            image=f"{self.python_executable} (validibot-pipelines {__version__})",
            started_at=started, finished_at=now(),
        )
