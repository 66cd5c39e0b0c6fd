"""Step logs that outlive the run: deploy/dagster.prod.yaml's ``compute_logs`` section (dagster-gcp's
GCSComputeLogManager, bucket from ``VALIDIBOT_COMPUTE_LOG_BUCKET``) on the real gcp-storage-emulator.

A real run prints to stdout and stderr; its captured logs are uploaded to the bucket, the local staging folder
is then deleted (as the DockerRunLauncher's container is), and a fresh instance — another process's view, the
webserver's — reads them back from GCS through its own compute log manager."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import yaml
from dagster import DagsterEventType, DagsterInstance, job, op

ROOT = Path(__file__).resolve().parents[1]
PROD_YAML = ROOT / "deploy" / "dagster.prod.yaml"
TOKEN = f"validibot-log-{uuid.uuid4().hex}"


@op
def chatty() -> None:
    print(f"{TOKEN} on stdout", flush=True)
    import sys

    print(f"{TOKEN} on stderr", file=sys.stderr, flush=True)


@job
def chatty_job() -> None:
    chatty()


def _configure(home: Path, local_dir: Path) -> Path:
    """``home`` as a SQLite instance with the production compute log section, staging in ``local_dir``."""
    compute_logs = yaml.safe_load(PROD_YAML.read_text())["compute_logs"]
    compute_logs["config"]["local_dir"] = str(local_dir)
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False},
                                                       "compute_logs": compute_logs}))
    return home


def test_prod_yaml_names_the_gcs_compute_log_manager_with_the_bucket_from_the_environment():
    section = yaml.safe_load(PROD_YAML.read_text())["compute_logs"]
    assert (section["module"], section["class"]) == ("dagster_gcp.gcs.compute_log_manager", "GCSComputeLogManager")
    assert section["config"]["bucket"] == {"env": "VALIDIBOT_COMPUTE_LOG_BUCKET"}
    launcher_env = yaml.safe_load(PROD_YAML.read_text())["run_launcher"]["config"]["env_vars"]
    assert "VALIDIBOT_COMPUTE_LOG_BUCKET" in launcher_env  # run containers configure the same manager


def test_run_logs_survive_in_gcs_and_read_back_through_a_fresh_instance(gcs_bucket, tmp_path, monkeypatch):  # noqa: ANN001
    from dagster_gcp.gcs.compute_log_manager import GCSComputeLogManager
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    bucket = gcs_bucket.removeprefix("gs://")
    monkeypatch.setenv("VALIDIBOT_COMPUTE_LOG_BUCKET", bucket)
    staging = tmp_path / "staging"
    home = _configure(tmp_path / "dagster_home", staging)
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.compute_log_manager, GCSComputeLogManager)
        result = chatty_job.execute_in_process(instance=instance)
        assert result.success
        run_id = result.run_id
        (captured,) = instance.all_logs(run_id, of_type=DagsterEventType.LOGS_CAPTURED)
        file_key = captured.dagster_event.event_specific_data.file_key
        log_key = [run_id, "compute_logs", file_key]
    names = [b.name for b in storage.Client(project="validibot-test", credentials=AnonymousCredentials())
             .list_blobs(bucket, prefix="dagster-compute-logs/")]
    assert any(run_id in name and name.endswith(".out") for name in names), names

    # The run's container is gone, its staging folder with it. The webserver (same run storage, its own local
    # disk) reads the logs from the bucket.
    shutil.rmtree(staging)
    with DagsterInstance.from_config(str(_configure(home, tmp_path / "webserver-staging"))) as webserver:
        assert webserver.get_run_by_id(run_id) is not None
        data = webserver.compute_log_manager.get_log_data(log_key)
    assert f"{TOKEN} on stdout" in data.stdout.decode()
    assert f"{TOKEN} on stderr" in data.stderr.decode()
