"""The ONE seam between the Cloud Run backend and the Cloud Run Jobs API, with a local job runner stand-in.

:class:`CloudRunJobsApi` is what the backend and the output sensor need: ``run_job(RunJobRequest) ->
Execution`` and ``get_execution(name) -> Execution`` (real ``google.cloud.run_v2`` messages both ways).
:class:`GoogleCloudRunApi` calls the real API (``run_v2.JobsClient`` / ``ExecutionsClient``, ambient service
account credentials). The API is unreachable here, so tests use :class:`LocalJobRunner`: it accepts the same
``RunJobRequest`` (job name, container env overrides, task timeout), runs the job's container command — by
default the real worker, ``python -m validibot_pipelines.runtime`` — as a subprocess with the job's env plus
the overrides (the same env contract: ``VALIDIBOT_INPUT_URI``), enforces the task timeout like Cloud Run
(SIGTERM, then SIGKILL), and reports a real ``run_v2.Execution`` whose counts and times say how it went.
"""

from __future__ import annotations

import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from google.cloud import run_v2

from validibot_pipelines.runtime.process import run_child, tail

STATUSES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


class CloudRunJobsApi(Protocol):
    def run_job(self, request: run_v2.RunJobRequest) -> run_v2.Execution: ...

    def get_execution(self, name: str) -> run_v2.Execution: ...

    def list_executions(self, job_name: str) -> list[run_v2.Execution]: ...


def in_flight(api: CloudRunJobsApi, job_name: str) -> int:
    """Executions of the job that have not completed (queued or running)."""
    return sum(1 for e in api.list_executions(job_name) if execution_status(e) not in TERMINAL)


def execution_status(execution: run_v2.Execution) -> str:
    """PENDING / RUNNING / SUCCEEDED / FAILED / CANCELLED from an Execution's counts and completion time."""
    if execution.cancelled_count:
        return "CANCELLED"
    if execution.completion_time:
        return "SUCCEEDED" if execution.succeeded_count >= max(execution.task_count, 1) else "FAILED"
    if execution.failed_count and execution.failed_count >= max(execution.task_count, 1):
        return "FAILED"
    return "RUNNING" if execution.running_count or execution.start_time else "PENDING"


class GoogleCloudRunApi:
    """The real Cloud Run Admin API v2 (credentials: the ambient service account; no keys in config)."""

    def run_job(self, request: run_v2.RunJobRequest) -> run_v2.Execution:
        operation = run_v2.JobsClient().run_job(request=request)
        return operation.metadata  # the Execution, available at once; operation.result() would wait for the end

    def get_execution(self, name: str) -> run_v2.Execution:
        return run_v2.ExecutionsClient().get_execution(name=name)

    def list_executions(self, job_name: str) -> list[run_v2.Execution]:
        return list(run_v2.ExecutionsClient().list_executions(parent=job_name))


@dataclass
class JobSpec:
    """A deployed job as the stand-in knows it: the container command, its env, the default task timeout."""

    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "validibot_pipelines.runtime"])
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 600.0  # Cloud Run's default task timeout
    grace_seconds: float = 2.0


@dataclass
class _Run:
    execution: run_v2.Execution
    thread: threading.Thread
    log: str = ""
    timed_out: bool = False


class LocalJobRunner:
    """Stand-in for the Cloud Run Jobs API: each ``run_job`` starts the job's command as a local subprocess.

    Jobs not registered with :meth:`deploy` run the real worker. One runner per process (:meth:`shared`), so the
    control plane that launched an execution and the sensor that polls it see the same executions.
    """

    _shared: LocalJobRunner | None = None

    def __init__(self) -> None:
        self.jobs: dict[str, JobSpec] = {}
        self.runs: dict[str, _Run] = {}
        self.requests: list[run_v2.RunJobRequest] = []
        self._lock = threading.Lock()

    @classmethod
    def shared(cls) -> LocalJobRunner:
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def deploy(self, job_name: str, spec: JobSpec) -> None:
        self.jobs[job_name] = spec

    def run_job(self, request: run_v2.RunJobRequest) -> run_v2.Execution:
        from google.api_core.exceptions import InvalidArgument

        parts = request.name.split("/")
        if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "jobs":
            raise InvalidArgument(f"job name {request.name!r} is not projects/*/locations/*/jobs/*")
        spec = self.jobs.get(parts[5], JobSpec())
        env = {**_base_env(), **spec.env}
        for override in request.overrides.container_overrides:
            env.update({var.name: var.value for var in override.env})
        timeout = request.overrides.timeout.total_seconds() if request.overrides.timeout else spec.timeout_seconds
        name = f"{request.name}/executions/{parts[5]}-{uuid.uuid4().hex[:5]}"
        execution = run_v2.Execution(name=name, job=parts[5], task_count=1, create_time=_now(),
                                     log_uri=f"local-job-runner://{name}")
        self.requests.append(request)
        run = _Run(execution=execution, thread=threading.Thread(daemon=True))
        run.thread = threading.Thread(target=self._execute, args=(run, spec, env, timeout), daemon=True)
        with self._lock:
            self.runs[name] = run
        run.thread.start()
        return run_v2.Execution(execution)

    def _execute(self, run: _Run, spec: JobSpec, env: dict[str, str], timeout: float) -> None:
        with self._lock:
            run.execution.start_time = _now()
            run.execution.running_count = 1
        child = run_child(spec.command, timeout=timeout, env=env, grace=spec.grace_seconds)
        with self._lock:
            run.log = tail(child.stderr, 40)
            run.timed_out = child.timed_out
            run.execution.running_count = 0
            if child.returncode == 0 and not child.timed_out:
                run.execution.succeeded_count = 1
            else:
                run.execution.failed_count = 1
            run.execution.completion_time = _now()

    def get_execution(self, name: str) -> run_v2.Execution:
        from google.api_core.exceptions import NotFound

        with self._lock:
            run = self.runs.get(name)
            if run is None:
                raise NotFound(f"execution {name} not found")
            return run_v2.Execution(run.execution)

    def list_executions(self, job_name: str) -> list[run_v2.Execution]:
        with self._lock:
            return [run_v2.Execution(r.execution) for n, r in self.runs.items() if n.startswith(job_name + "/")]

    def logs(self, name: str) -> str:
        run = self.runs.get(name)
        return run.log if run else ""

    def wait(self, name: str, timeout: float = 60.0) -> str:
        """Block until the execution ends (tests); returns its status."""
        self.runs[name].thread.join(timeout)
        return execution_status(self.get_execution(name))


def _base_env() -> dict[str, str]:
    """What a deployed job's container would have: the image's env plus the job's configured env vars."""
    import os

    return dict(os.environ)


def _now() -> datetime:
    return datetime.now(UTC)
