"""Local subprocess backend — the embedded default: a fresh machine needs no cloud account.

Runs ``python -m validibot_pipelines.runtime`` as a child process with ``VALIDIBOT_INPUT_URI`` (one envelope)
or ``VALIDIBOT_BATCH_URI`` (a batch) set (:mod:`.local_process`). Inside a Dagster step it opens a Dagster Pipes
session, so the worker's log lines stream into the run's logs. Isolation here is a separate process, and every
model's code runs in a sandboxed child of it (bubblewrap); use the Docker backend for container isolation.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from dagster import ConfigurableResource, PipesEnvContextInjector, PipesTempFileMessageReader, open_pipes_session
from pydantic import Field

from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.local_process import WORKER_MODULE, LocalProcessLauncher
from validibot_pipelines.resources.backends.pipes_context import op_context

__all__ = ["WORKER_MODULE", "LocalSubprocessBackend"]


@contextlib.contextmanager
def _pipes_env(context: Any) -> Iterator[dict[str, str]]:
    with open_pipes_session(context=op_context(context), context_injector=PipesEnvContextInjector(),
                            message_reader=PipesTempFileMessageReader()) as session:
        yield session.get_bootstrap_env_vars()


class LocalSubprocessBackend(ConfigurableResource):
    """Launch the worker as a local subprocess (one per step, or one per batch of steps)."""

    python_executable: str = Field(default=sys.executable, description="interpreter with the worker installed")
    grace_seconds: float = Field(default=5.0, description="after SIGTERM on timeout, before SIGKILL")

    def _launcher(self) -> LocalProcessLauncher:
        return LocalProcessLauncher(self.python_executable, self.grace_seconds, _pipes_env)

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        return self._launcher().launch(input_uri, run_id=run_id, timeout_seconds=timeout_seconds, context=context)

    def launch_batch(self, input_uris: list[str], *, batch_id: str, timeout_seconds: float,
                     context: Any = None) -> list[LaunchRecord]:
        """One worker process for the whole batch (its envelopes share warm sandboxes, ``runtime/batch.py``)."""
        return self._launcher().launch_batch(input_uris, batch_id=batch_id, timeout_seconds=timeout_seconds,
                                             context=context)
