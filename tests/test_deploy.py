"""Production deployment: deploy/dagster.prod.yaml on a real PostgreSQL (started here), the docker-compose file
checked by a real Compose implementation, and environment separation (test can never resolve to prod)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from tests.postgres import postgres_server
from validibot_pipelines.validators import REGISTERED

ROOT = Path(__file__).resolve().parents[1]
PROD_YAML = ROOT / "deploy" / "dagster.prod.yaml"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"


@pytest.fixture(scope="module")
def pg(gcs_endpoint: str) -> Iterator[dict[str, str]]:  # step logs go to a bucket on the GCS emulator
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    log_bucket = f"validibot-logs-{uuid.uuid4().hex[:12]}"
    storage.Client(project="validibot-test", credentials=AnonymousCredentials()).create_bucket(log_bucket)
    with postgres_server() as settings, pytest.MonkeyPatch.context() as mp:
        for key, value in settings.items():
            mp.setenv(key, value)
        mp.setenv("VALIDIBOT_MAX_CONCURRENT_RUNS", "3")
        mp.setenv("VALIDIBOT_DOCKER_NETWORK", "validibot_test")
        mp.setenv("VALIDIBOT_COMPUTE_LOG_BUCKET", log_bucket)
        yield settings


def _home(tmp_path: Path, config: dict) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def test_prod_yaml_loads_postgres_storage_queued_coordinator_and_docker_launcher(pg, tmp_path):  # noqa: ANN001
    from dagster_docker import DockerRunLauncher
    from dagster_gcp.gcs.compute_log_manager import GCSComputeLogManager
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    home = _home(tmp_path, yaml.safe_load(PROD_YAML.read_text()))
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.compute_log_manager, GCSComputeLogManager)  # step logs outlive the container
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)  # config validated against dagster-docker's schema
        assert launcher.networks == ["validibot_test"]
        assert {"DAGSTER_PG_HOST", "VALIDIBOT_ENV", "VALIDIBOT_STORE_URI"} <= set(launcher.env_vars)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 3
        assert queue.tag_concurrency_limits[0]["key"] == "validibot/trigger"


def test_materialization_on_postgres_storage(pg, tmp_path, sample_fmus, sample_specs):  # noqa: ANN001
    import psycopg2

    from tests.conftest import Pipeline
    from validibot_pipelines.operations.staleness import plan_revalidation

    config = yaml.safe_load(PROD_YAML.read_text())
    config.pop("run_launcher")  # runs execute in-process here; the launcher section is checked above
    home = _home(tmp_path, config)
    with DagsterInstance.from_config(str(home)) as instance:
        pipe = Pipeline(instance, (tmp_path / "landing").as_uri(), (tmp_path / "store").as_uri())
        pipe.drop(sample_fmus["first_order_lag"], spec=sample_specs / "first_order_lag.validation.yaml")
        (outcome,) = pipe.tick()
        assert outcome.success and outcome.checks["cel_assertions"] == (True, "2/2 assertions passed")
        mat = instance.fetch_materializations(AssetRecordsFilter(
            asset_key=AssetKey("fmu_simulation"), asset_partitions=[outcome.partition_key]), limit=1).records
        assert mat and mat[0].run_id == outcome.run_id
        assert plan_revalidation(instance, pipe.defs.resolve_asset_graph(), "fmi").partitions == []

    # The rows are really in PostgreSQL, not in a local SQLite file.
    assert not list(home.rglob("*.db"))
    with psycopg2.connect(host=pg["DAGSTER_PG_HOST"], port=pg["DAGSTER_PG_PORT"], user=pg["DAGSTER_PG_USERNAME"],
                          dbname=pg["DAGSTER_PG_DB"]) as conn, conn.cursor() as cur:
        cur.execute("select status from runs where run_id = %s", (outcome.run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute("select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION' "
                    "and run_id = %s", (outcome.run_id,))
        assert cur.fetchone()[0] == 3  # intake, probe, simulation
        cur.execute("select partition from dynamic_partitions where partitions_def_name = 'fmu_models'")
        assert cur.fetchall() == [(outcome.partition_key,)]


COMPOSE_ENV = {"DAGSTER_PG_PASSWORD": "x", "VALIDIBOT_STORE_URI": "gs://validibot-it/store",
               "VALIDIBOT_LANDING_URI": "gs://validibot-it/landing", "VALIDIBOT_ENV": "test",
               "VALIDIBOT_COMPUTE_LOG_BUCKET": "validibot-it-logs"}


def _compose_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose (Compose file validator) is missing; run scripts/install-system-deps"
    return subprocess.run([exe, "-f", str(path), "config"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, cwd=path.parent)


def test_compose_file_is_valid_and_separates_environments(tmp_path):  # noqa: ANN001
    result = _compose_config(COMPOSE, COMPOSE_ENV)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    services = resolved["services"]
    assert {"postgres", "code", "webserver", "daemon"} <= services.keys()
    for validator in REGISTERED:  # every registered validator has its worker image in the stack
        worker = services[f"worker-{validator}"]
        assert worker["image"] == f"validibot-worker-{validator}:latest"
        # The build context must be containers/ (the Dockerfile COPYs wheels/ and image/ from fetch-wheels).
        assert Path(worker["build"]["context"]) == COMPOSE.parent.parent.resolve() / "containers"
        assert worker["build"]["args"]["VALIDATOR"] == validator
        assert (Path(worker["build"]["context"]) / "fetch-wheels").exists()
        assert "VALIDATOR_METADATA" in worker["build"]["args"]
        assert services["daemon"]["environment"][f"VALIDIBOT_{validator.upper()}_DOCKER_IMAGE"] == worker["image"]
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    env = services["daemon"]["environment"]
    assert env["DAGSTER_PG_DB"] == "validibot_test" and env["VALIDIBOT_ENV"] == "test"
    # Run containers load the definitions too: the launcher must forward every setting the code reads from the
    # daemon's environment (backend flags, worker images, buckets) and mount the engine's socket.
    launcher = yaml.safe_load(PROD_YAML.read_text())["run_launcher"]["config"]
    forwarded = set(launcher["env_vars"])
    wanted = {k for k in env if k.startswith("VALIDIBOT_") and k not in {"VALIDIBOT_DOCKER_NETWORK",
                                                                         "VALIDIBOT_MAX_CONCURRENT_RUNS"}}
    assert wanted <= forwarded, sorted(wanted - forwarded)
    assert "/var/run/docker.sock:/var/run/docker.sock" in launcher["container_kwargs"]["volumes"]
    assert resolved["networks"]["validibot"]["name"] == "validibot_test"
    assert resolved["volumes"]["pgdata"]["name"] == "validibot_pgdata_test"
    prod = yaml.safe_load(_compose_config(COMPOSE, {**COMPOSE_ENV, "VALIDIBOT_ENV": "prod"}).stdout)
    assert prod["volumes"]["pgdata"]["name"] == "validibot_pgdata_prod"

    # The validator really validates: a misspelt key and a missing secret are rejected.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:", "    healthchek:"))
    bad = _compose_config(broken, COMPOSE_ENV)
    assert bad.returncode != 0 and "healthchek" in bad.stderr
    missing = _compose_config(COMPOSE, {k: v for k, v in COMPOSE_ENV.items() if k != "DAGSTER_PG_PASSWORD"}
                              | {"DAGSTER_PG_PASSWORD": ""})
    assert missing.returncode != 0 and "DAGSTER_PG_PASSWORD" in missing.stderr
