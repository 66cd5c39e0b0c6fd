"""The ONE seam between the Cloud Run backend and the Cloud Run Jobs API.

:class:`CloudRunJobsApi` is what the backend and the output sensor need: ``run_job(RunJobRequest) ->
Execution``, ``get_execution(name)`` and ``list_executions(job)`` (real ``google.cloud.run_v2`` messages both
ways). :class:`GoogleCloudRunApi` calls the real API (``run_v2.JobsClient`` / ``ExecutionsClient``, ambient
service account credentials). The API is unreachable here, so tests and demos use the local job runner in
:mod:`.cloudrun_stand_in`, which honours the same contract.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Protocol

from google.api_core.exceptions import GoogleAPICallError
from google.auth.exceptions import GoogleAuthError
from google.cloud import run_v2

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
#: What a call through the seam may raise: the API's own errors, and missing or unusable credentials
#: (raised when the client is made, before any call).
API_ERRORS = (GoogleAPICallError, GoogleAuthError)


class CloudRunJobsApi(Protocol):
    def run_job(self, request: run_v2.RunJobRequest) -> run_v2.Execution: ...

    def get_execution(self, name: str) -> run_v2.Execution: ...

    def list_executions(self, job_name: str) -> list[run_v2.Execution]: ...


def in_flight(api: CloudRunJobsApi, job_name: str) -> int:
    """Executions of the job that have not completed (queued or running)."""
    return sum(1 for e in api.list_executions(job_name) if execution_status(e) not in TERMINAL)


def execution_status(execution: run_v2.Execution) -> str:
    """PENDING / RUNNING / SUCCEEDED / FAILED / CANCELLED from an Execution's counts and completion time.

    An execution of several tasks (a batch) is SUCCEEDED only when every task succeeded: one failed task makes
    it FAILED once it completes (its other tasks' envelopes have their outputs all the same)."""
    if execution.cancelled_count:
        return "CANCELLED"
    if execution.completion_time:
        return "SUCCEEDED" if execution.succeeded_count >= max(execution.task_count, 1) else "FAILED"
    if execution.failed_count and execution.failed_count >= max(execution.task_count, 1):
        return "FAILED"
    return "RUNNING" if execution.running_count or execution.start_time else "PENDING"


class GoogleCloudRunApi:
    """The real Cloud Run Admin API v2 (credentials: the ambient service account; no keys in config).

    Its gRPC clients are made once per process and reused: each one opens a channel and loads credentials.
    """

    @cached_property
    def _jobs(self) -> run_v2.JobsClient:
        return run_v2.JobsClient()

    @cached_property
    def _executions(self) -> run_v2.ExecutionsClient:
        return run_v2.ExecutionsClient()

    def run_job(self, request: run_v2.RunJobRequest) -> run_v2.Execution:
        operation = self._jobs.run_job(request=request)
        return operation.metadata  # the Execution, available at once; operation.result() would wait for the end

    def get_execution(self, name: str) -> run_v2.Execution:
        return self._executions.get_execution(name=name)

    def list_executions(self, job_name: str) -> list[run_v2.Execution]:
        return list(self._executions.list_executions(parent=job_name))


@cache
def google_cloud_run_api() -> GoogleCloudRunApi:
    """The process's one client of the real API (the seam's production side)."""
    return GoogleCloudRunApi()
