"""Local subprocess backend — the embedded default: a fresh machine needs no cloud account.

Runs ``python -m validibot_pipelines.runtime`` as a child process with ``VALIDIBOT_INPUT_URI`` set. Inside a
Dagster step it opens a Dagster Pipes session, so the worker's log lines stream into the run's logs.
Isolation here is a separate process (and the FMU runs in a further child); use the Docker backend for
container isolation.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from dagster import ConfigurableResource, PipesEnvContextInjector, PipesTempFileMessageReader, open_pipes_session
from pydantic import Field

from validibot_pipelines import __version__
from validibot_pipelines.envelopes.base import now
from validibot_pipelines.resources.backends.base import LaunchRecord, batch_records
from validibot_pipelines.runtime.batch import ENV_BATCH, write_manifest
from validibot_pipelines.runtime.entrypoint import ENV_INPUT, ENV_RUN_ID
from validibot_pipelines.runtime.process import run_child, tail

WORKER_MODULE = "validibot_pipelines.runtime"


class LocalSubprocessBackend(ConfigurableResource):
    """Launch the worker as a local subprocess (one per step, or one per batch of steps)."""

    python_executable: str = Field(default=sys.executable, description="interpreter with the worker installed")
    grace_seconds: float = Field(default=5.0, description="after SIGTERM on timeout, before SIGKILL")

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
        if context is None:
            child = run_child(cmd, timeout=timeout_seconds, env=env, grace=self.grace_seconds)
        else:
            with open_pipes_session(
                context=context,
                context_injector=PipesEnvContextInjector(),
                message_reader=PipesTempFileMessageReader(),
            ) as session:
                env.update(session.get_bootstrap_env_vars())
                child = run_child(cmd, timeout=timeout_seconds, env=env, grace=self.grace_seconds)
        return LaunchRecord(
            backend="local", launch_id=f"pid:{child.pid}", returncode=child.returncode, timed_out=child.timed_out,
            seconds=round(child.seconds, 4), log_tail=tail(child.stderr, log_lines),
            image=f"{self.python_executable} (validibot-pipelines {__version__})",
            started_at=started, finished_at=now(),
        )
