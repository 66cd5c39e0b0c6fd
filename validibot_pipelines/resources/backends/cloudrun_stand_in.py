"""Local stand-in for the Cloud Run Jobs API (the API itself is unreachable from this machine).

It honours :class:`~.cloudrun_api.CloudRunJobsApi`: ``run_job`` takes the same ``run_v2.RunJobRequest`` (job
name, container env overrides, task count, task timeout) and starts the job's container command — by default
the real worker, ``python -m validibot_pipelines.runtime`` — once per task, with the job's env plus the
overrides (the same env contract: ``VALIDIBOT_INPUT_URI`` or ``VALIDIBOT_BATCH_URI``) and what Cloud Run sets
in every task: ``CLOUD_RUN_TASK_INDEX``, ``CLOUD_RUN_TASK_COUNT``, ``CLOUD_RUN_TASK_ATTEMPT``,
``CLOUD_RUN_EXECUTION``, ``CLOUD_RUN_JOB``. Tasks run side by side (up to the job's ``parallelism``, 0 = all),
each under the task timeout; the execution succeeds only when every task did. Like the real service,
executions outlive the process that launched them: each one is run by a detached supervisor process
(``python -m`` this module) that enforces the task timeout (SIGTERM, grace, SIGKILL) and records the execution
and its tasks as JSON in a state folder, so the run worker that launched it, the sensor that polls it and the
run that collects it can all be different processes (``dagster dev``). ``get_execution`` /
``list_executions`` return real ``run_v2.Execution`` messages built from those records.

State folder: ``VALIDIBOT_CLOUDRUN_STAND_IN_DIR`` (default ``<tmp>/validibot-cloudrun-stand-in``); jobs
"deployed" with :meth:`LocalJobRunner.deploy` (another command, env or timeout) are recorded there too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from google.cloud import run_v2

from validibot_pipelines.orchestration import access
from validibot_pipelines.resources.backends.cloudrun_api import execution_status

ENV_STATE_DIR = "VALIDIBOT_CLOUDRUN_STAND_IN_DIR"
MAX_TASKS = 10_000  # Cloud Run's limit on tasks per execution


@dataclass
class JobSpec:
    """A deployed job as the stand-in knows it: the container command, its env, the default task timeout."""

    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "validibot_pipelines.runtime"])
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 600.0  # Cloud Run's default task timeout
    grace_seconds: float = 2.0
    parallelism: int = 0  # tasks running at once; 0 = all of them (Cloud Run's default: as many as it can)


def state_dir_from_env() -> Path:
    return Path(os.environ.get(ENV_STATE_DIR) or Path(tempfile.gettempdir()) / f"validibot-cloudrun-{os.getuid()}")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _write(path: Path, data: dict) -> None:
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # atomic: readers never see half a record


class LocalJobRunner:
    """The stand-in API object; cheap to create, all state lives in ``state_dir``."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = Path(state_dir or state_dir_from_env())
        (self.state_dir / "executions").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "jobs").mkdir(parents=True, exist_ok=True)
        self.requests: list[run_v2.RunJobRequest] = []  # what this process sent (for tests)

    _shared: LocalJobRunner | None = None

    @classmethod
    def shared(cls) -> LocalJobRunner:
        if cls._shared is None or cls._shared.state_dir != state_dir_from_env():
            cls._shared = cls()
        return cls._shared

    def deploy(self, job: str, spec: JobSpec) -> None:
        _write(self.state_dir / "jobs" / f"{job}.json", asdict(spec))

    def _job(self, job: str) -> JobSpec:
        path = self.state_dir / "jobs" / f"{job}.json"
        return JobSpec(**json.loads(path.read_text())) if path.is_file() else JobSpec()

    def _record_path(self, name: str) -> Path:
        return self.state_dir / "executions" / (name.replace("/", "~") + ".json")

    def run_job(self, request: run_v2.RunJobRequest) -> run_v2.Execution:
        from google.api_core.exceptions import InvalidArgument

        parts = request.name.split("/")
        if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "jobs":
            raise InvalidArgument(f"job name {request.name!r} is not projects/*/locations/*/jobs/*")
        spec = self._job(parts[5])
        # The image's env + the job's configured env vars; none of the control plane's credentials: a job on
        # signed access runs as a service account with no storage role (orchestration/access.py).
        env = {**access.without_credentials(dict(os.environ)), **spec.env}
        for override in request.overrides.container_overrides:
            env.update({var.name: var.value for var in override.env})
        timeout = request.overrides.timeout.total_seconds() if request.overrides.timeout else spec.timeout_seconds
        task_count = request.overrides.task_count or 1
        if task_count > MAX_TASKS:
            raise InvalidArgument(f"task_count {task_count} exceeds the maximum of {MAX_TASKS} tasks per execution")
        name = f"{request.name}/executions/{parts[5]}-{uuid.uuid4().hex[:5]}"
        record = {"name": name, "job": parts[5], "create_time": _now(), "start_time": None,
                  "completion_time": None, "task_count": task_count, "running": 0, "succeeded": 0, "failed": 0,
                  "timed_out": False, "log": "", "log_uri": f"local-job-runner://{name}",
                  "tasks": [{"index": i, "status": "PENDING", "timed_out": False, "log": ""}
                            for i in range(task_count)]}
        path = self._record_path(name)
        _write(path, record)
        env.update({"CLOUD_RUN_JOB": parts[5], "CLOUD_RUN_EXECUTION": name.rsplit("/", 1)[1]})
        supervisor = [sys.executable, "-m", __name__, str(path), str(timeout), str(spec.grace_seconds),
                      json.dumps(spec.command), str(spec.parallelism)]
        subprocess.Popen(  # detached: survives this process, like an execution survives its caller
            supervisor,
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.requests.append(request)
        return self._execution(record)

    def _read(self, name: str) -> dict:
        from google.api_core.exceptions import NotFound

        path = self._record_path(name)
        if not path.is_file():
            raise NotFound(f"execution {name} not found")
        return json.loads(path.read_text())

    @staticmethod
    def _execution(record: dict) -> run_v2.Execution:
        execution = run_v2.Execution(name=record["name"], job=record["job"], task_count=record.get("task_count", 1),
                                     running_count=record["running"], succeeded_count=record["succeeded"],
                                     failed_count=record["failed"], log_uri=record["log_uri"])
        for key in ("create_time", "start_time", "completion_time"):
            if record[key]:
                setattr(execution, key, datetime.fromisoformat(record[key]))
        return execution

    def get_execution(self, name: str) -> run_v2.Execution:
        return self._execution(self._read(name))

    def list_executions(self, job_name: str) -> list[run_v2.Execution]:
        prefix = (job_name + "/executions/").replace("/", "~")
        return [self._execution(json.loads(p.read_text()))
                for p in (self.state_dir / "executions").glob(prefix + "*.json")]

    def logs(self, name: str, task_index: int | None = None) -> str:
        """The execution's worker log lines, or one task's (what Cloud Logging shows per task)."""
        record = self._read(name)
        return _task(record, task_index)["log"] if task_index is not None else record["log"]

    def timed_out(self, name: str, task_index: int | None = None) -> bool:
        """Whether the execution's task (any, or the one at ``task_index``) was killed at the task timeout."""
        record = self._read(name)
        return bool((_task(record, task_index) if task_index is not None else record)["timed_out"])

    def task_statuses(self, name: str) -> list[str]:
        """Each task's status, by index (PENDING / RUNNING / SUCCEEDED / FAILED)."""
        return [task["status"] for task in self._read(name).get("tasks", [])]

    def names(self) -> list[str]:
        return [json.loads(p.read_text())["name"] for p in (self.state_dir / "executions").glob("*.json")]

    def wait(self, name: str, timeout: float = 120.0) -> str:
        """Block until the execution completes (tests); returns its status."""
        deadline = time.monotonic() + timeout
        while not self._read(name)["completion_time"] and time.monotonic() < deadline:
            time.sleep(0.05)
        return execution_status(self.get_execution(name))


def _task(record: dict, index: int) -> dict:
    """One task of a record (a record from before tasks were kept is its own single task)."""
    tasks = record.get("tasks") or [record]
    return tasks[index] if 0 <= index < len(tasks) else {"log": "", "timed_out": False}


def _supervise(record_path: Path, timeout: float, grace: float, command: list[str], parallelism: int = 0) -> None:
    """Run one execution's tasks to the end and record how each went (the detached supervisor's body)."""
    from concurrent.futures import ThreadPoolExecutor

    from validibot_pipelines.runtime.process import run_child, tail

    record = json.loads(record_path.read_text())
    count = record.get("task_count", 1)
    lock = threading.Lock()

    def update(index: int, **changes: object) -> None:
        with lock:
            record["tasks"][index].update(changes)
            tasks = record["tasks"]
            record.update(running=sum(t["status"] == "RUNNING" for t in tasks),
                          succeeded=sum(t["status"] == "SUCCEEDED" for t in tasks),
                          failed=sum(t["status"] == "FAILED" for t in tasks),
                          timed_out=any(t["timed_out"] for t in tasks))
            if all(t["status"] in ("SUCCEEDED", "FAILED") for t in tasks):
                record["log"] = tasks[0]["log"] if count == 1 else "\n".join(
                    f"[task {t['index']}] " + t["log"].replace("\n", f"\n[task {t['index']}] ")
                    for t in tasks if t["log"])
                record["completion_time"] = _now()
            _write(record_path, record)

    def task(index: int) -> None:
        update(index, status="RUNNING")
        env = {**os.environ, "CLOUD_RUN_TASK_INDEX": str(index), "CLOUD_RUN_TASK_COUNT": str(count),
               "CLOUD_RUN_TASK_ATTEMPT": "0"}
        child = run_child(command, timeout=timeout, env=env, grace=grace)
        ok = child.returncode == 0 and not child.timed_out
        update(index, status="SUCCEEDED" if ok else "FAILED", timed_out=child.timed_out, log=tail(child.stderr, 40))

    record.update(start_time=_now())
    _write(record_path, record)
    with ThreadPoolExecutor(min(count, parallelism or count)) as pool:
        list(pool.map(task, range(count)))


if __name__ == "__main__":
    _supervise(Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4]),
               int(sys.argv[5]) if len(sys.argv) > 5 else 0)
