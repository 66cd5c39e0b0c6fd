"""Choosing a backend per validator (the feature flag), pools per backend, Cloud Run backpressure."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from dagster import RetryRequested, instance_for_test

from tests.backend_helpers import cloudrun_stand_in, write_envelope
from validibot_pipelines.definitions import build_defs
from validibot_pipelines.resources.backends.cloudrun import CloudRunJobsBackend
from validibot_pipelines.resources.backends.cloudrun_stand_in import JobSpec, LocalJobRunner
from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
from validibot_pipelines.resources.backends.modal import ModalBackend
from validibot_pipelines.resources.backends.select import (
    BackendSelectionError,
    backend_name,
    make_backend,
    pool_for,
)
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.validators.energyplus.assets import energyplus_simulation
from validibot_pipelines.validators.fmi.assets import fmu_probe, fmu_simulation

ROOT = Path(__file__).resolve().parents[1]


def test_default_is_local_for_every_validator_including_new_ones() -> None:
    for validator in ("fmi", "energyplus", "mesh"):
        assert backend_name(validator, {}) == "local"
        assert isinstance(make_backend(validator, {}), LocalSubprocessBackend)
        assert pool_for(validator, {}) == "validibot-local"


def test_flags_pick_each_validators_backend_and_config() -> None:
    env = {"VALIDIBOT_FMI_BACKEND": "modal", "FMI_USE_TEST_VOLUME": "1",
           "VALIDIBOT_ENERGYPLUS_BACKEND": "CloudRun", "VALIDIBOT_CLOUDRUN_PROJECT": "acme-prod",
           "VALIDIBOT_CLOUDRUN_REGION": "europe-west4", "VALIDIBOT_ENERGYPLUS_CLOUDRUN_JOB": "ep-worker",
           "VALIDIBOT_MESH_BACKEND": "modal"}
    fmi = make_backend("fmi", env)
    assert isinstance(fmi, ModalBackend) and fmi.app_name == "validibot-fmi" and fmi.cache_volume == "fmi-cache-test"
    ep = make_backend("energyplus", env)
    assert isinstance(ep, CloudRunJobsBackend)
    assert ep.job_name == "projects/acme-prod/locations/europe-west4/jobs/ep-worker" and ep.max_in_flight == 20
    mesh = make_backend("mesh", env)
    assert isinstance(mesh, ModalBackend) and mesh.app_name == "validibot-mesh" and mesh.cache_volume == ""
    # The control plane uploads to the volume the deployed app mounts: same rule, same names.
    assert make_backend("fmi", {"VALIDIBOT_FMI_BACKEND": "modal"}).cache_volume == "fmi-cache"
    assert make_backend("fmi", {"VALIDIBOT_FMI_BACKEND": "modal", "VALIDIBOT_ENV": "test"}).cache_volume == \
        "fmi-cache-test"
    assert pool_for("energyplus", env) == "validibot-cloudrun"
    # Rolling back is the same flag set to local (or unset): nothing else changes.
    assert isinstance(make_backend("fmi", {**env, "VALIDIBOT_FMI_BACKEND": "local"}), LocalSubprocessBackend)


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(BackendSelectionError, match="VALIDIBOT_FMI_BACKEND='lambda' is not a backend; use one of"):
        make_backend("fmi", {"VALIDIBOT_FMI_BACKEND": "lambda"})


def test_docker_is_imported_lazily_with_a_clear_error_when_missing(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "validibot_pipelines.resources.backends.docker", None)  # as if absent
    with pytest.raises(BackendSelectionError, match="VALIDIBOT_MESH_BACKEND=docker but the Docker backend module"):
        make_backend("mesh", {"VALIDIBOT_MESH_BACKEND": "docker"})


def test_definitions_take_the_backend_from_the_environment(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_FMI_BACKEND", "cloudrun")
    monkeypatch.setenv("VALIDIBOT_CLOUDRUN_PROJECT", "acme-prod")
    defs = build_defs()
    assert isinstance(defs.resources["fmi_backend"], CloudRunJobsBackend)
    assert isinstance(defs.resources["energyplus_backend"], LocalSubprocessBackend)
    assert "output_sensor" in {s.name for s in defs.sensors}


def test_worker_steps_are_in_their_backends_pool_and_the_instance_config_is_valid() -> None:
    for assets_def in (fmu_probe, fmu_simulation, energyplus_simulation):
        assert assets_def.op.pool == "validibot-local"  # the default flag at import time
    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    with instance_for_test(overrides={"concurrency": config["concurrency"]}) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 2 and pools.pool_granularity.value == "op"
        instance.event_log_storage.set_concurrency_slots("validibot-modal", 20)  # = dagster instance concurrency set
        assert instance.event_log_storage.get_concurrency_info("validibot-modal").slot_count == 20


def test_cloudrun_launch_waits_while_too_many_executions_are_unfinished(gcs_bucket) -> None:  # noqa: ANN001
    runner = LocalJobRunner.shared()
    runner.deploy("validibot-slow", JobSpec(command=[sys.executable, "-c", "import time; time.sleep(30)"],
                                            grace_seconds=0.2))
    backend = CloudRunJobsBackend(project="validibot-test", region="europe-west1", job="validibot-slow",
                                  stand_in=True, max_in_flight=1, busy_retry_seconds=7)

    def envelope(run_id: str) -> str:
        return write_envelope(gcs_bucket, run_id)[1]

    first = backend.launch(envelope("a"), run_id="a", timeout_seconds=5)
    assert first.pending and first.status in {"PENDING", "RUNNING"}
    second = backend.launch(envelope("b"), run_id="b", timeout_seconds=1)
    assert not second.pending and "unfinished (max_in_flight=1); launch deferred" in second.error
    log = SimpleNamespace(info=lambda _msg: None)
    with pytest.raises(RetryRequested) as raised:
        backend.launch(envelope("c"), run_id="c", timeout_seconds=1,
                       context=SimpleNamespace(log=log, partition_keys=["c"]))
    assert raised.value.seconds_to_wait == 7
    assert runner.wait(first.launch_id) == "FAILED"  # killed at its 5 s task timeout
    third = backend.launch(envelope("d"), run_id="d", timeout_seconds=1)
    assert third.pending  # capacity is back
    runner.wait(third.launch_id)
    assert cloudrun_stand_in().max_in_flight == 0


def test_real_cloud_run_client_without_credentials_is_a_clear_failed_runtime(gcs_bucket, monkeypatch, tmp_path) -> None:  # noqa: ANN001, E501
    """The production side of the seam (``GoogleCloudRunApi``, real ``run_v2`` clients) on a machine without
    Google credentials: the step ends ``failed_runtime`` saying what to do — never a traceback."""
    from validibot_pipelines.orchestration.launch import read_output
    from validibot_pipelines.resources.backends import cloudrun_api

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    cloudrun_api.google_cloud_run_api.cache_clear()
    envelope, uri = write_envelope(gcs_bucket, "nocreds")
    bundle = envelope.context.execution_bundle_uri
    for backend in (CloudRunJobsBackend(project="acme", region="europe-west1", job="validibot-fmi"),
                    CloudRunJobsBackend(project="acme", region="europe-west1", job="validibot-fmi", max_in_flight=5)):
        record = backend.launch(uri, run_id="nocreds", timeout_seconds=60)
        assert not record.pending and "no usable Google Cloud credentials" in record.error, record.error
        assert "gcloud auth application-default login" in record.error
        out = read_output(envelope, record)
        assert out.status == "failed_runtime" and out.messages[0].code == "BACKEND_ERROR"
    assert not get_store(bundle).exists(join_uri(bundle, "launch.json"))  # nothing left for the sensor to wait on
    cloudrun_api.google_cloud_run_api.cache_clear()


def test_a_retried_step_never_launches_its_bundle_twice(gcs_bucket) -> None:  # noqa: ANN001
    """One bundle is one execution: launching the same envelope again (a retried step) returns the execution
    already running — also once it ended, since the output sensor collects it under the same callback id."""
    runner = LocalJobRunner.shared()
    runner.deploy("validibot-sleepy", JobSpec(command=[sys.executable, "-c", "import time; time.sleep(2)"]))
    backend = CloudRunJobsBackend(project="validibot-test", region="europe-west1", job="validibot-sleepy",
                                  stand_in=True)
    _, uri = write_envelope(gcs_bucket, "twice")
    before = len(runner.requests)
    first = backend.launch(uri, run_id="twice", timeout_seconds=30)
    again = backend.launch(uri, run_id="twice", timeout_seconds=30)
    assert first.pending and again.pending and again.launch_id == first.launch_id
    assert runner.wait(first.launch_id) == "SUCCEEDED"
    after_end = backend.launch(uri, run_id="twice", timeout_seconds=30)
    assert after_end.pending and after_end.launch_id == first.launch_id and after_end.status == "SUCCEEDED"
    assert len(runner.requests) == before + 1
