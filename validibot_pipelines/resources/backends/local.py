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

from dagster import (
    ConfigurableResource,
    InitResourceContext,
    PipesEnvContextInjector,
    PipesTempFileMessageReader,
    open_pipes_session,
)
from pydantic import Field, PrivateAttr

from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.local_process import WORKER_MODULE, LocalProcessLauncher, WorkerSession
from validibot_pipelines.resources.backends.pipes_context import op_context
from validibot_pipelines.runtime.batch import ENV_LANES

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
    worker_session: bool = Field(
        default=True, description="a run's launches (probe round, simulation round…; or one model's probe and "
        "simulation) share one worker process that keeps its warm sandboxes between them; it starts with the "
        "run and ends with it")
    validator: str = Field(default="", description="the validator this backend serves: the run's worker warms "
                           "its sandboxes for it while the run's first steps (intake) run")
    _session: WorkerSession | None = PrivateAttr(default=None)
    _in_run: bool = PrivateAttr(default=False)

    def _launcher(self) -> LocalProcessLauncher:
        # Only in a run Dagster set up: its teardown is what ends the session (used directly, no session).
        if self.worker_session and self._in_run and self._session is None:
            self._session = WorkerSession(self.python_executable, self.grace_seconds)
        return LocalProcessLauncher(self.python_executable, self.grace_seconds, _pipes_env, session=self._session)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """In a run, start its worker at once: its interpreter and its sandboxes start while intake runs.

        A run of one model (a ``dagster/partition`` tag) gets one lane: its probe and its simulation run one
        after the other on the same warm sandbox, and a second one would only compete for the CPUs."""
        self._in_run = True
        run = getattr(context, "run", None)
        if not self.worker_session or run is None:
            return
        single = "dagster/partition" in (run.tags or {})
        self._session = WorkerSession.start(self.python_executable, self.grace_seconds,
                                            warm=(f"{self.validator}:assets",) if self.validator else ("-",),
                                            env={ENV_LANES: "1"} if single else {})

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """The run (with the in-process executor: its every step) is over; stop the worker session if any."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        """One envelope; in a run, on the run's worker (``runtime/session.py``), every log line through Pipes."""
        return self._launcher().launch(input_uri, run_id=run_id, timeout_seconds=timeout_seconds, context=context)

    def launch_batch(self, input_uris: list[str], *, batch_id: str, timeout_seconds: float,
                     context: Any = None) -> list[LaunchRecord]:
        """One worker process for the whole batch (its envelopes share warm sandboxes, ``runtime/batch.py``)."""
        return self._launcher().launch_batch(input_uris, batch_id=batch_id, timeout_seconds=timeout_seconds,
                                             context=context)
