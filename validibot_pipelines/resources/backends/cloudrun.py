"""Cloud Run Jobs backend: launch a job execution per step and return at once; the GCS output sensor collects.

Per launch: the input envelope is already in the GCS execution bundle (``runs/<run_id>/input.json``); the
backend calls ``run_job`` with a container env override ``VALIDIBOT_INPUT_URI`` (large envelopes stay in
GCS, only the URI travels), writes ``launch.json`` next to the envelope (execution name, job, callback id,
the Dagster asset and partition to resume) and the ``launches/<run_id>.json`` marker the sensor lists, and
returns a *pending* :class:`LaunchRecord` with the execution name and job status. ``sensors/outputs.py``
later sees ``output.json`` (or a FAILED / CANCELLED execution) and requests the run that materializes the
result, with ``run_key = callback_id``.

A batch (``launch_batch``) is ONE execution: ``VALIDIBOT_BATCH_URI`` names the manifest of the envelopes still
to run, ``task_count = min(envelopes, max_tasks_per_execution)`` and each task takes its shard by
``CLOUD_RUN_TASK_INDEX`` / ``CLOUD_RUN_TASK_COUNT`` (task timeout: an envelope's timeout per envelope of the
largest shard). Every envelope's bundle still gets its own ``launch.json`` (naming the execution, the manifest
and its task) and marker, so the sensor collects each envelope as it would a launch of its own: from its
output as soon as it lands, or — without one once the execution ended (it succeeds only when every task
did) — as ``failed_runtime`` naming the execution.

If the bundle already holds an output for these exact envelope bytes, nothing is launched (replay). All API
calls go through :mod:`.cloudrun_api` (the one seam); ``stand_in=True`` uses the local job runner.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from validibot_pipelines.envelopes import envelope_sha256, load_input_envelope
from validibot_pipelines.envelopes.base import now
from validibot_pipelines.orchestration import access
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
from validibot_pipelines.runtime.batch import ENV_BATCH
from validibot_pipelines.runtime.entrypoint import ENV_INPUT, ENV_RUN_ID, replayable_output
from validibot_pipelines.storage import get_store, join_uri

LAUNCH_FILE = "launch.json"
#: A launch record without an execution name this old means the launching process died before ``run_job``
#: answered (it writes the record first): the sensor then collects it as failed instead of waiting forever.
NEVER_STARTED_AFTER_SECONDS = 600
#: What ``launch.json`` (and the envelope's LaunchRecord details) say about a batch execution: its manifest,
#: size, the envelope's place in it and the task that runs it (task ``i`` of ``n`` takes every ``n``-th).
BATCH_FIELDS = ("batch", "batch_size", "batch_index", "task_index", "task_count")


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
    max_tasks_per_execution: int = Field(default=100, description="a batch's execution has one task per envelope "
                                                                   "up to this many; each task then takes its "
                                                                   "share of the manifest")

    @property
    def job_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/jobs/{self.job}"

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        return self._launch([input_uri], timeout_seconds, context, names=[run_id])[0]

    def launch_batch(self, input_uris: list[str], *, batch_id: str, timeout_seconds: float,
                     context: Any = None) -> list[LaunchRecord]:
        """ONE execution for the envelopes still to run (``VALIDIBOT_BATCH_URI``, ``runtime/batch.py``) with
        ``min(envelopes, max_tasks_per_execution)`` tasks, each taking its shard of the manifest by
        ``CLOUD_RUN_TASK_INDEX`` / ``CLOUD_RUN_TASK_COUNT``. Asynchronous like :meth:`launch`: every envelope's
        bundle gets its own ``launch.json`` and marker, so the output sensor collects each one by itself."""
        return self._launch(input_uris, timeout_seconds, context, batch_id=batch_id)

    def _launch(self, input_uris: list[str], timeout_seconds: float, context: Any, *,
                names: list[str] | None = None, batch_id: str = "") -> list[LaunchRecord]:
        started, t0 = now(), time.monotonic()
        record = LaunchRecord(backend="cloudrun", launch_id="", returncode=None, timed_out=False, seconds=0.0,
                              image=self.job_name, started_at=started,
                              details={"project": self.project, "region": self.region, "job": self.job,
                                       "stand_in": "yes" if self.stand_in else "no"})

        def done(**changes: Any) -> LaunchRecord:
            return record.model_copy(update={"seconds": round(time.monotonic() - t0, 4), "finished_at": now(),
                                             **changes})

        records: list[LaunchRecord | None] = [None] * len(input_uris)
        ready: list[_Envelope] = []  # still to run: launched together
        for index, input_uri in enumerate(input_uris):
            outcome = self._prepare(input_uri)
            if isinstance(outcome, _Envelope):
                outcome.index, outcome.name = index, names[index] if names else outcome.envelope.run_id
                ready.append(outcome)
            else:
                records[index] = done(**outcome)
        refused = self._room(context) if ready else ""
        for item in list(ready):
            item.target = _dagster_target(context, item.envelope.context.tags.get("model", ""))
            if refused or (context is not None and not item.target["partition"]):
                records[item.index] = done(error=refused or (
                    f"cannot tell which of this step's partitions {item.name} belongs to (envelope tag model "
                    "missing or not in the step); the output could not be collected"))
                ready.remove(item)
        if ready:
            launched = self._run(ready, timeout_seconds, context, batch_id, started)
            for item in ready:
                records[item.index] = done(**launched, details={**record.details, **item.details})
        return [r for r in records if r is not None]

    def _prepare(self, input_uri: str) -> _Envelope | dict[str, Any]:
        """One envelope to launch, or its record's fields when it does not run (refused, replayed, already
        launched)."""
        if not input_uri.startswith("gs://"):
            return {"error": f"Cloud Run Jobs read their input from GCS but the envelope is at {input_uri}; set "
                             "VALIDIBOT_STORE_URI to a gs:// bucket the job's service account can read and write"}
        if not self.project:
            return {"error": "no GCP project for Cloud Run: set VALIDIBOT_CLOUDRUN_PROJECT (or GOOGLE_CLOUD_PROJECT)"}
        raw = get_store(input_uri).read_bytes(input_uri)
        envelope = load_input_envelope(raw, where=input_uri)
        bundle = envelope.context.execution_bundle_uri
        if replayable_output(envelope.context.expected_output_uri, envelope_sha256(raw)) is not None:
            marker_uri = launch_marker_uri(bundle)
            get_store(marker_uri).delete(marker_uri)  # this step reads the output itself: the sensor must not too
            return {"launch_id": f"replay:{envelope.context.expected_output_uri}", "returncode": 0,
                    "status": "SUCCEEDED",
                    "log_tail": "the bundle already holds the output for this envelope; no execution launched"}
        earlier = self._earlier_launch(bundle, envelope.context.callback_id)
        if earlier:  # a retried step: one bundle is one execution, which the output sensor collects
            return {"launch_id": earlier[0], "pending": True, "status": earlier[1],
                    "log_tail": "already launched for this bundle; the output sensor collects it"}
        return _Envelope(input_uri, envelope)

    def _room(self, context: Any) -> str:
        """Nothing when the job may take one more execution now, else why not (in a step: RetryRequested)."""
        try:
            busy = self._busy()
        except API_ERRORS as exc:
            return cloudrun_error_message(exc, self.job_name)
        if busy and context is not None and len(context.partition_keys) > 1:
            busy = self._wait_for_room(busy, context.log.info)
        if busy and context is not None:  # Dagster retries the step later: the backfill waits instead of flooding
            from dagster import RetryRequested

            context.log.info(busy)
            raise RetryRequested(max_retries=self.busy_max_retries, seconds_to_wait=self.busy_retry_seconds)
        return busy

    def _run(self, ready: list[_Envelope], timeout_seconds: float, context: Any, batch_id: str,
             started: datetime) -> dict[str, Any]:
        """Launch one execution for ``ready`` (one task for one envelope, else a batch of up to
        ``max_tasks_per_execution`` tasks) with every bundle's ``launch.json`` and marker: the records' fields."""
        if len(ready) == 1:  # the plain contract: one envelope, one task (also what a batch leaves to run)
            only = ready[0]
            request = self.run_request(access.worker_reference(only.input_uri, timeout_seconds, only.envelope),
                                       only.name, timeout_seconds)
            launches = [self._launch_record(only, started)]
        else:
            tasks = max(1, min(len(ready), self.max_tasks_per_execution))
            task_timeout = timeout_seconds * math.ceil(len(ready) / tasks)
            manifest, reference = access.batch_reference([item.input_uri for item in ready], batch_id, task_timeout,
                                                         [item.envelope for item in ready])
            request = self.batch_request(reference, batch_id, tasks, task_timeout)
            launches = [self._launch_record(item, started, batch={
                "batch": manifest, "batch_size": len(ready), "batch_index": i, "task_index": i % tasks,
                "task_count": tasks}) for i, item in enumerate(ready)]
            for item, launch in zip(ready, launches, strict=True):
                item.details = {k: launch[k] for k in BATCH_FIELDS}
        # All written before run_job, so a fast worker's output is never seen without its launch record.
        for item, launch in zip(ready, launches, strict=True):
            _write_launch(item.bundle, launch)
            marker_uri = launch_marker_uri(item.bundle)
            get_store(marker_uri).write_bytes(marker_uri, json.dumps(
                {"bundle": item.bundle, "launched_at": launch["launched_at"]}).encode(), "application/json")
        try:
            execution = cloudrun_api(self.stand_in).run_job(request)
        except BaseException as exc:  # nothing runs: the sensor must have nothing to wait for
            for item in ready:
                marker_uri = launch_marker_uri(item.bundle)
                get_store(marker_uri).delete(marker_uri)
                launch_uri = join_uri(item.bundle, LAUNCH_FILE)
                get_store(launch_uri).delete(launch_uri)
            if isinstance(exc, API_ERRORS):
                return {"error": cloudrun_error_message(exc, self.job_name)}
            raise
        status = execution_status(execution)
        for item, launch in zip(ready, launches, strict=True):
            launch.update(execution=execution.name, status_at_launch=status, log_uri=execution.log_uri)
            _write_launch(item.bundle, launch)
        if context is not None:
            which = ready[0].name if len(ready) == 1 else f"{len(ready)} envelopes ({request.overrides.task_count} " \
                f"tasks, batch {batch_id})"
            context.log.info(f"cloudrun: launched {execution.name} ({status}) for {which}")
        for item in ready:
            item.details["log_uri"] = execution.log_uri
        return {"launch_id": execution.name, "pending": True, "status": status}

    def _launch_record(self, item: _Envelope, started: datetime, batch: dict[str, Any] | None = None) -> dict[str, Any]:
        """The bundle's ``launch.json``: which execution runs it (filled in once ``run_job`` answered), the
        callback id and the Dagster asset and partition the output sensor resumes."""
        envelope = item.envelope
        return {
            "backend": "cloudrun", "execution": "", "job_name": self.job_name, "stand_in": self.stand_in,
            "callback_id": envelope.context.callback_id, "run_id": envelope.run_id, "input_uri": item.input_uri,
            "expected_output_uri": envelope.context.expected_output_uri, "launched_at": started.isoformat(),
            "status_at_launch": "PENDING", "log_uri": "", **item.target, **(batch or {}),
        }

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
        return self._request({ENV_INPUT: input_uri, ENV_RUN_ID: run_id}, 1, timeout_seconds)

    def batch_request(self, manifest_uri: str, batch_id: str, task_count: int, timeout_seconds: float) -> Any:
        """A batch's execution: the manifest in the env, ``task_count`` tasks, each with this task timeout."""
        return self._request({ENV_BATCH: manifest_uri, ENV_RUN_ID: batch_id}, task_count, timeout_seconds)

    def _request(self, env: dict[str, str], task_count: int, timeout_seconds: float) -> Any:
        from google.cloud import run_v2

        override = run_v2.RunJobRequest.Overrides.ContainerOverride(
            env=[run_v2.EnvVar(name=name, value=value) for name, value in env.items()])
        return run_v2.RunJobRequest(name=self.job_name, overrides=run_v2.RunJobRequest.Overrides(
            container_overrides=[override], task_count=task_count, timeout=timedelta(seconds=int(timeout_seconds))))


@dataclass
class _Envelope:
    """An envelope about to be launched: its URI, the envelope, the Dagster target, its place in the call."""

    input_uri: str
    envelope: Any
    target: dict[str, str] = field(default_factory=dict)
    index: int = 0
    name: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def bundle(self) -> str:
        return self.envelope.context.execution_bundle_uri


def _write_launch(bundle: str, launch: dict[str, Any]) -> None:
    uri = join_uri(bundle, LAUNCH_FILE)
    get_store(uri).write_bytes(uri, json.dumps(launch, indent=2).encode(), "application/json")


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
    task = launch.get("task_index") if launch.get("task_count", 1) > 1 else None  # a batch: the envelope's task
    if isinstance(api, LocalJobRunner):
        return status, api.logs(name, task), api.timed_out(name, task)
    where = f" (task {task} of {launch['task_count']})" if task is not None else ""
    return status, f"logs: {launch.get('log_uri', '')}{where}", False


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
                 "launched_by_run": launch.get("dagster_run_id", ""),
                 **{k: launch[k] for k in BATCH_FIELDS if k in launch}},
    )
