"""Cloud Run Jobs backend: launch a job execution per step and return at once; the GCS output sensor collects.

Per launch: the input envelope is already in the GCS execution bundle (``runs/<run_id>/input.json``); the
backend calls ``run_job`` with a container env override ``VALIDIBOT_INPUT_URI`` (large envelopes stay in
GCS, only the URI travels), writes ``launch.json`` next to the envelope (execution name, job, callback id,
the Dagster asset and partition to resume) and the ``launches/<run_id>.json`` marker the sensor lists, and
returns a *pending* :class:`LaunchRecord` with the execution name and job status. ``sensors/outputs.py``
later sees ``output.json`` (or a FAILED / CANCELLED execution) and requests the run that materializes the
result, with ``run_key = callback_id``.

If the bundle already holds an output for these exact envelope bytes, nothing is launched (replay). All API
calls go through :mod:`.cloudrun_api` (the one seam); ``stand_in=True`` uses the local job runner.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from validibot_pipelines.envelopes import envelope_sha256, load_input_envelope
from validibot_pipelines.envelopes.base import now
from validibot_pipelines.orchestration.layout import launch_marker_uri
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.cloudrun_api import (
    API_ERRORS,
    CloudRunJobsApi,
    execution_status,
    google_cloud_run_api,
    in_flight,
)
from validibot_pipelines.resources.backends.cloudrun_stand_in import LocalJobRunner
from validibot_pipelines.runtime.entrypoint import ENV_INPUT, ENV_RUN_ID, replayable_output
from validibot_pipelines.storage import get_store, join_uri

LAUNCH_FILE = "launch.json"
#: A launch record without an execution name this old means the launching process died before ``run_job``
#: answered (it writes the record first): the sensor then collects it as failed instead of waiting forever.
NEVER_STARTED_AFTER_SECONDS = 600


def cloudrun_api(stand_in: bool) -> CloudRunJobsApi:
    return LocalJobRunner.shared() if stand_in else google_cloud_run_api()


class CloudRunJobsBackend(ConfigurableResource):
    """Run the worker as a Cloud Run Jobs execution (asynchronous: completion is seen by the output sensor)."""

    project: str = Field(default="", description="GCP project of the job (VALIDIBOT_CLOUDRUN_PROJECT)")
    region: str = Field(default="us-central1", description="Cloud Run region (VALIDIBOT_CLOUDRUN_REGION)")
    job: str = Field(default="", description="deployed job running the validator image (validibot-<validator>)")
    stand_in: bool = Field(default=False, description="use the local job runner instead of the Cloud Run API")
    max_in_flight: int = Field(default=0, description="launch only while fewer executions of the job are "
                                                      "unfinished (0 = no limit); else the step retries later "
                                                      "(a backfill batch step waits for room)")
    busy_retry_seconds: int = Field(default=60, description="wait before retrying a launch refused as busy")
    busy_max_retries: int = Field(default=60)

    @property
    def job_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/jobs/{self.job}"

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        started, t0 = now(), time.monotonic()
        record = LaunchRecord(backend="cloudrun", launch_id="", returncode=None, timed_out=False, seconds=0.0,
                              image=self.job_name, started_at=started,
                              details={"project": self.project, "region": self.region, "job": self.job,
                                       "stand_in": "yes" if self.stand_in else "no"})

        def done(**changes: Any) -> LaunchRecord:
            return record.model_copy(update={"seconds": round(time.monotonic() - t0, 4), "finished_at": now(),
                                             **changes})

        if not input_uri.startswith("gs://"):
            return done(error=f"Cloud Run Jobs read their input from GCS but the envelope is at {input_uri}; set "
                              "VALIDIBOT_STORE_URI to a gs:// bucket the job's service account can read and write")
        if not self.project:
            return done(error="no GCP project for Cloud Run: set VALIDIBOT_CLOUDRUN_PROJECT (or GOOGLE_CLOUD_PROJECT)")
        raw = get_store(input_uri).read_bytes(input_uri)
        envelope = load_input_envelope(raw, where=input_uri)
        bundle = envelope.context.execution_bundle_uri
        marker_uri = launch_marker_uri(bundle)
        if replayable_output(envelope.context.expected_output_uri, envelope_sha256(raw)) is not None:
            get_store(marker_uri).delete(marker_uri)  # this step reads the output itself: the sensor must not too
            return done(launch_id=f"replay:{envelope.context.expected_output_uri}", returncode=0, status="SUCCEEDED",
                        log_tail="the bundle already holds the output for this envelope; no execution launched")
        earlier = self._earlier_launch(bundle, envelope.context.callback_id)
        if earlier:  # a retried step: one bundle is one execution, which the output sensor collects
            return done(launch_id=earlier[0], pending=True, status=earlier[1],
                        log_tail="already launched for this bundle; the output sensor collects it")
        try:
            busy = self._busy()
        except API_ERRORS as exc:
            return done(error=cloudrun_error_message(exc, self.job_name))
        if busy and context is not None and len(context.partition_keys) > 1:
            busy = self._wait_for_room(busy, context.log.info)
        if busy:
            if context is not None:  # Dagster retries the step later: the backfill waits instead of flooding
                from dagster import RetryRequested

                context.log.info(busy)
                raise RetryRequested(max_retries=self.busy_max_retries, seconds_to_wait=self.busy_retry_seconds)
            return done(error=busy)
        target = _dagster_target(context, envelope.context.tags.get("model", ""))
        if context is not None and not target["partition"]:
            return done(error=f"cannot tell which of this step's partitions {run_id} belongs to (envelope tag "
                              "model missing or not in the step); the output could not be collected")
        request = self.run_request(input_uri, run_id, timeout_seconds)
        launch: dict[str, Any] = {
            "backend": "cloudrun", "execution": "", "job_name": self.job_name, "stand_in": self.stand_in,
            "callback_id": envelope.context.callback_id, "run_id": envelope.run_id, "input_uri": input_uri,
            "expected_output_uri": envelope.context.expected_output_uri, "launched_at": started.isoformat(),
            "status_at_launch": "PENDING", "log_uri": "", **target,
        }
        launch_uri = join_uri(bundle, LAUNCH_FILE)
        store = get_store(launch_uri)
        # Both written before run_job, so a fast worker's output is never seen without its launch record.
        store.write_bytes(launch_uri, json.dumps(launch, indent=2).encode(), "application/json")
        get_store(marker_uri).write_bytes(marker_uri, json.dumps(
            {"bundle": bundle, "launched_at": launch["launched_at"]}).encode(), "application/json")
        try:
            execution = cloudrun_api(self.stand_in).run_job(request)
        except BaseException as exc:  # nothing runs: the sensor must have nothing to wait for
            get_store(marker_uri).delete(marker_uri)
            store.delete(launch_uri)
            if isinstance(exc, API_ERRORS):
                return done(error=cloudrun_error_message(exc, self.job_name))
            raise
        status = execution_status(execution)
        launch.update(execution=execution.name, status_at_launch=status, log_uri=execution.log_uri)
        store.write_bytes(launch_uri, json.dumps(launch, indent=2).encode(), "application/json")
        if context is not None:
            context.log.info(f"cloudrun: launched {execution.name} ({status}) for {run_id}")
        record.details["log_uri"] = execution.log_uri
        return done(launch_id=execution.name, pending=True, status=status)

    def _earlier_launch(self, bundle_uri: str, callback_id: str) -> tuple[str, str] | None:
        """(execution, status) of the execution already launched for this bundle and callback, whatever its
        state: running or not (even when its status cannot be asked right now), it is collected by the output
        sensor under this callback id, so launching again would run the model twice or lose the second run."""
        launch = read_launch(bundle_uri)
        if not launch or launch.get("callback_id") != callback_id or not launch.get("execution"):
            return None
        return launch["execution"], launch_status(launch)[0]

    def _wait_for_room(self, busy: str, log: Any) -> str:
        """In a backfill batch the models before this one are already launched: retrying the whole step would
        walk them again, so the step waits here until the job has room (or gives up, as the retry would)."""
        for _ in range(self.busy_max_retries):
            log(f"{busy}; waiting {self.busy_retry_seconds} s")
            time.sleep(self.busy_retry_seconds)
            try:
                busy = self._busy()
            except API_ERRORS as exc:  # a passing API or credentials hiccup: keep waiting, it is retried
                busy = f"could not count unfinished executions ({cloudrun_error_message(exc, self.job_name)})"
                continue
            if not busy:
                return ""
        return busy

    def _busy(self) -> str:
        if self.max_in_flight <= 0:
            return ""
        count = in_flight(cloudrun_api(self.stand_in), self.job_name)
        if count < self.max_in_flight:
            return ""
        return (f"{count} executions of {self.job_name} are unfinished (max_in_flight={self.max_in_flight}); "
                f"launch deferred")

    def run_request(self, input_uri: str, run_id: str, timeout_seconds: float) -> Any:
        from google.cloud import run_v2

        override = run_v2.RunJobRequest.Overrides.ContainerOverride(env=[
            run_v2.EnvVar(name=ENV_INPUT, value=input_uri), run_v2.EnvVar(name=ENV_RUN_ID, value=run_id)])
        return run_v2.RunJobRequest(name=self.job_name, overrides=run_v2.RunJobRequest.Overrides(
            container_overrides=[override], task_count=1, timeout=timedelta(seconds=int(timeout_seconds))))


def _dagster_target(context: Any, model_partition: str) -> dict[str, str]:
    """Which asset and partition the output sensor should materialize when the output arrives.

    A backfill batch launches several models from one step (a partition *range*, where Dagster refuses
    ``context.partition_key``), so the partition is the launched model's own (its partition key, carried in the
    envelope's ``model`` tag) — checked against the step's partitions. The sensor picks the validator's job itself
    from the asset's group: the launching run's job may be a backfill's implicit asset job.
    """
    if context is None:
        return {}
    keys = list(context.partition_keys)
    partition = model_partition if model_partition in keys else keys[0] if len(keys) == 1 else ""
    return {"asset": context.asset_key.to_user_string(), "partition": partition,
            "dagster_run_id": context.run.run_id}


def cloudrun_error_message(exc: BaseException, job_name: str) -> str:
    from google.api_core import exceptions as gx
    from google.auth.exceptions import GoogleAuthError

    if isinstance(exc, GoogleAuthError):
        return (f"no usable Google Cloud credentials for the Cloud Run API ({exc}); run the code location as a "
                "service account with roles/run.developer (on GCP), or `gcloud auth application-default login` "
                "(elsewhere) — or set VALIDIBOT_<VALIDATOR>_BACKEND=local to run the validator locally")

    if isinstance(exc, gx.NotFound):
        return (f"Cloud Run job {job_name} does not exist ({exc.message}); deploy the validator image as that job "
                "(gcloud run jobs deploy) or set VALIDIBOT_<VALIDATOR>_CLOUDRUN_JOB")
    if isinstance(exc, gx.PermissionDenied | gx.Unauthenticated):
        return (f"not allowed to run {job_name} ({exc.message}); grant the code location's service account "
                "roles/run.developer (and roles/iam.serviceAccountUser on the job's service account)")
    return f"Cloud Run run_job({job_name}) failed: {type(exc).__name__}: {getattr(exc, 'message', exc)}"


def read_launch(bundle_uri: str) -> dict[str, Any] | None:
    uri = join_uri(bundle_uri, LAUNCH_FILE)
    store = get_store(uri)
    if not store.exists(uri):
        return None
    return json.loads(store.read_bytes(uri))


def launch_status(launch: dict[str, Any]) -> tuple[str, str, bool]:
    """(job status, worker log lines, timed out) of a recorded launch, asked from the Cloud Run API (seam)."""
    name = launch.get("execution") or ""
    if not name:
        launched = datetime.fromisoformat(launch["launched_at"]) if launch.get("launched_at") else None
        if launched is not None and (now() - launched).total_seconds() > NEVER_STARTED_AFTER_SECONDS:
            return "FAILED", ("the launch never reached Cloud Run: the process launching it stopped before "
                              "run_job answered; re-run the validation"), False
        return launch.get("status_at_launch", "PENDING"), "", False
    api = cloudrun_api(bool(launch.get("stand_in")))
    try:
        status = execution_status(api.get_execution(name))
    except API_ERRORS as exc:
        return "UNKNOWN", f"get_execution({name}) failed: {exc}", False
    if isinstance(api, LocalJobRunner):
        return status, api.logs(name), api.timed_out(name)
    return status, f"logs: {launch.get('log_uri', '')}", False


def describe_launch(bundle_uri: str) -> LaunchRecord:
    """The LaunchRecord of an asynchronous launch, rebuilt from ``launch.json`` and the execution's status."""
    launch = read_launch(bundle_uri)
    if launch is None:
        return LaunchRecord(backend="unknown", launch_id="", returncode=None, timed_out=False, seconds=0.0,
                            error=f"{join_uri(bundle_uri, LAUNCH_FILE)} is missing: no launch was recorded")
    status, log, timed_out = launch_status(launch)
    started = datetime.fromisoformat(launch["launched_at"])
    finished = now()
    return LaunchRecord(
        backend=launch.get("backend", "cloudrun"), launch_id=launch.get("execution", ""),
        returncode=0 if status == "SUCCEEDED" else None, timed_out=timed_out,
        seconds=round((finished - started).total_seconds(), 4), log_tail=log, image=launch.get("job_name", ""),
        started_at=started, finished_at=finished, status=status,
        details={"callback_id": launch.get("callback_id", ""), "log_uri": launch.get("log_uri", ""),
                 "launched_by_run": launch.get("dagster_run_id", "")},
    )
