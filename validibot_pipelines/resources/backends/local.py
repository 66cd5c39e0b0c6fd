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
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.runtime.entrypoint import ENV_INPUT, ENV_RUN_ID
from validibot_pipelines.runtime.process import run_child, tail

WORKER_MODULE = "validibot_pipelines.runtime"


class LocalSubprocessBackend(ConfigurableResource):
    """Launch the worker as a local subprocess (one per step)."""

    python_executable: str = Field(default=sys.executable, description="interpreter with the worker installed")
    grace_seconds: float = Field(default=5.0, description="after SIGTERM on timeout, before SIGKILL")

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        started = now()
        env = {**os.environ, ENV_INPUT: input_uri, ENV_RUN_ID: run_id}
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
            seconds=round(child.seconds, 4), log_tail=tail(child.stderr, 20),
            image=f"{self.python_executable} (validibot-pipelines {__version__})",
            started_at=started, finished_at=now(),
        )
