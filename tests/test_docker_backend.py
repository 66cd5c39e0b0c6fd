"""The Docker backend on a real engine (podman's Docker API): image build, runs, hardening, timeout, sweep.

The session fixtures start podman's API service, make (or re-use) the debootstrap base image and build the
worker image from ``containers/`` (see tests/docker_engine.py). Every test runs real containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.docker_engine import (
    ENERGYPLUS_IMAGE,
    MESH_IMAGE,
    REPO,
    WORKER_IMAGE,
    XML_IMAGE,
    build_worker_image,
    ensure_base_image,
    podman_service,
)
from tests.outcomes import NO_REFERENCE
from validibot_pipelines.envelopes import Status
from validibot_pipelines.orchestration.models import ModelRecord, intake
from validibot_pipelines.resources.backends.docker import DockerBackend
from validibot_pipelines.resources.backends.docker_sweep import LABEL_RUN_ID, container_labels
from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
from validibot_pipelines.validators import REGISTERED
from validibot_pipelines.validators.fmi import launch as fmi


@pytest.fixture(scope="session")
def docker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with podman_service(tmp_path_factory.mktemp("podman")) as url:
        yield url


@pytest.fixture(scope="session")
def docker_client(docker_url: str):  # noqa: ANN201
    import docker

    return docker.DockerClient(base_url=docker_url)


@pytest.fixture(scope="session")
def worker_image(docker_client, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: ANN001
    ensure_base_image(docker_client)
    build_worker_image(docker_client, tmp_path_factory.mktemp("build") / "context")
    return WORKER_IMAGE


@pytest.fixture
def backend(docker_url: str, worker_image: str) -> DockerBackend:
    return DockerBackend(image=worker_image, docker_host=docker_url)


def _accepted(fmu: Path, store_uri: str, spec: Path | None = None) -> ModelRecord:
    spec_uri = None
    if spec is not None:
        spec_uri = f"{store_uri}/specs/{spec.name}"
        Path(spec_uri.removeprefix("file://")).parent.mkdir(parents=True, exist_ok=True)
        Path(spec_uri.removeprefix("file://")).write_bytes(spec.read_bytes())
    record = intake(fmu.resolve().as_uri(), store_uri=store_uri, spec_uri=spec_uri)
    assert record.accepted, record.findings
    return record


def _ours(client, run_id: str) -> list:  # noqa: ANN001
    return client.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}={run_id}"})


# --- the image ----------------------------------------------------------------------------------------------


def test_image_runs_the_worker_entrypoint_as_non_root(docker_client, worker_image):  # noqa: ANN001
    image = docker_client.images.get(worker_image)
    assert image.attrs["Config"]["User"] == "10001:10001"
    assert image.attrs["Config"]["Entrypoint"] == ["python", "-m", "validibot_pipelines.runtime"]
    # Without VALIDIBOT_INPUT_URI the contract's entrypoint explains itself and exits 2.
    container = docker_client.containers.run(worker_image, detach=True, read_only=True)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 2
        assert b"set VALIDIBOT_INPUT_URI" in container.logs()
    finally:
        container.remove(force=True)
    # The worker image has the FMI tools but none of the control plane (kept small on purpose).
    check = "import fmpy.validation, pyarrow, dagster_pipes, google.cloud.storage, boto3\n" \
            "import importlib.util as u; print([m for m in ('dagster', 'pandas', 'cmake') if u.find_spec(m)])"
    out = docker_client.containers.run(worker_image, entrypoint=["python", "-c", check], remove=True)
    assert out.strip() == b"[]"


def test_container_requirements_match_pyproject_pins():
    pins = {}
    for dep in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, sep, version = dep.partition("==")
        if sep:
            pins[name.lower()] = version
    for req in (REPO / "validibot_pipelines" / "validators").glob("*/image/requirements*.txt"):
        for line in req.read_text().splitlines():
            name, sep, version = line.partition("==")
            if sep and name.lower() in pins:
                assert version == pins[name.lower()], f"{req.name}: {name}=={version} but pyproject pins {pins[name]}"


# --- runs: same results as the local backend ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["first_order_lag", "multi_output"])
def test_probe_and_simulation_equal_the_local_backend(backend, docker_client, sample_fmus, sample_specs,  # noqa: ANN001
                                                      tmp_path, name):
    store = (tmp_path / "store").as_uri()
    record = _accepted(sample_fmus[name], store, sample_specs / f"{name}.validation.yaml")
    results = {}
    for label, be in (("docker", backend), ("local", LocalSubprocessBackend())):
        probe, probe_launch = fmi.probe(record, store_uri=store, backend=be, attempt=label)
        sim, sim_launch = fmi.simulate(record, store_uri=store, backend=be, attempt=label,
                                       simulation_timeout_seconds=60, plot=True)
        results[label] = (probe, sim, probe_launch, sim_launch)
    d_probe, d_sim, d_probe_launch, d_sim_launch = results["docker"]
    l_probe, l_sim, _, _ = results["local"]
    assert d_probe.status == Status.SUCCESS and d_sim.status == Status.SUCCESS, (d_probe.messages, d_sim.messages)
    assert d_probe.outputs == l_probe.outputs
    assert d_sim.outputs["output_values"] == l_sim.outputs["output_values"]
    assert d_sim.outputs["simulation_time_reached"] == l_sim.outputs["simulation_time_reached"]
    # Identical parquet bytes, and the same plot drawn in the container as on the host (same matplotlib wheel).
    assert [a.name for a in d_sim.artifacts] == ["plot.png", "timeseries.parquet"]
    assert [a.sha256 for a in d_sim.artifacts] == [a.sha256 for a in l_sim.artifacts]
    assert fmi.check(record, d_sim, d_probe) == fmi.check(record, l_sim, l_probe)
    # What the record tells an analyst: container, image, timings, the worker's own log lines.
    for launch in (d_probe_launch, d_sim_launch):
        assert launch.backend == "docker" and launch.returncode == 0 and not launch.timed_out
        assert len(launch.launch_id) == 64 and launch.image == WORKER_IMAGE
        assert launch.details["image_id"].removeprefix("sha256:") == \
            docker_client.images.get(WORKER_IMAGE).id.removeprefix("sha256:")
        assert launch.details["started_at"] and launch.details["finished_at"]
        assert launch.details["network"] == "none" and launch.details["user"] == "10001:10001"
        assert not _ours(docker_client, d_probe.run_id) and not _ours(docker_client, d_sim.run_id)  # removed
    assert "running fmi-simulation" in d_sim_launch.log_tail
    assert "simulated " in d_sim_launch.log_tail and "wrote file://" in d_sim_launch.log_tail


def test_dagster_materializes_fmi_assets_on_docker(backend, docker_client, pipeline, sample_fmus,  # noqa: ANN001
                                                    sample_specs):
    from dagster import AssetKey, AssetRecordsFilter

    from validibot_pipelines.definitions import build_defs

    pipeline.defs = build_defs(pipeline.settings, fmi_backend=backend)
    pipeline.drop(sample_fmus["first_order_lag"], spec=sample_specs / "first_order_lag.validation.yaml")
    (outcome,) = pipeline.tick()
    assert outcome.success
    assert outcome.checks == {"intake_accepted": (True, "accepted"), "probe_approved": (True, "success"),
                              "simulation_succeeded": (True, "success"),
                              "cel_assertions": (True, "2/2 assertions passed"),
                          "matches_reference": (True, NO_REFERENCE)}
    local = LocalSubprocessBackend()
    record = ModelRecord.model_validate(outcome.outputs["fmu_intake"])
    expected, _ = fmi.simulate(record, store_uri=pipeline.store_uri, backend=local, attempt="local-ref",
                               simulation_timeout_seconds=60)
    assert outcome.outputs["fmu_simulation"]["outputs"]["output_values"] == expected.outputs["output_values"]

    mat = pipeline.instance.fetch_materializations(AssetRecordsFilter(
        asset_key=AssetKey("fmu_simulation"), asset_partitions=[outcome.partition_key]), limit=1).records[0]
    meta = mat.asset_materialization.metadata
    assert meta["backend"].value == "docker" and meta["worker_image"].value == WORKER_IMAGE
    container_id = meta["launch_id"].value
    assert len(container_id) == 64 and not docker_client.containers.list(all=True, filters={"id": container_id})
    assert meta["launch_details"].value["network"] == "none"
    assert "simulated first_order_lag.fmu" in meta["worker_log"].value
    # The worker's log lines reached the Dagster run log through Pipes (read from the container's stderr).
    messages = [e.user_message for e in pipeline.instance.all_logs(outcome.run_id)]
    assert any("probe first_order_lag.fmu: FMI 2.0" in m for m in messages)
    assert any("simulated first_order_lag.fmu to t=3.0" in m for m in messages)


# --- timeouts -----------------------------------------------------------------------------------------------


class ShortFuse:
    """Launches with a shorter deadline than the envelope says: a worker stuck past its own limits."""

    def __init__(self, backend: DockerBackend, seconds: float) -> None:
        self.backend, self.seconds = backend, seconds

    def launch(self, input_uri, *, run_id, timeout_seconds, context=None):  # noqa: ANN001, ANN201
        return self.backend.launch(input_uri, run_id=run_id, timeout_seconds=self.seconds, context=context)


def test_worker_past_its_deadline_is_stopped_killed_and_removed(backend, docker_client, sample_fmus, tmp_path):  # noqa: ANN001
    store = (tmp_path / "store").as_uri()
    record = _accepted(sample_fmus["hang"], store)
    fused = ShortFuse(backend.model_copy(update={"stop_grace_seconds": 1}), seconds=4)
    out, launch = fmi.simulate(record, store_uri=store, backend=fused, attempt="fuse", timeout_seconds=600,
                               simulation_timeout_seconds=600)
    assert launch.timed_out and launch.returncode != 0
    assert out.status == Status.FAILED_RUNTIME
    (msg,) = out.messages
    assert msg.code == "WORKER_NO_OUTPUT"
    assert f"docker worker ({launch.launch_id}) timed out and was killed" in msg.text
    assert not _ours(docker_client, out.run_id)


def test_simulation_timeout_inside_the_container_is_the_models_fault(backend, sample_fmus, tmp_path):  # noqa: ANN001
    store = (tmp_path / "store").as_uri()
    record = _accepted(sample_fmus["hang"], store)
    out, launch = fmi.simulate(record, store_uri=store, backend=backend, attempt="hang",
                               simulation_timeout_seconds=2)
    assert not launch.timed_out and launch.returncode == 0
    assert out.status == Status.FAILED_VALIDATION
    assert any(m.code == "FMU_TIMEOUT" and "did not finish within 2 s" in m.text for m in out.messages)


def test_missing_image_is_a_runtime_failure_that_says_what_to_do(docker_url, sample_fmus, tmp_path):  # noqa: ANN001
    store = (tmp_path / "store").as_uri()
    record = _accepted(sample_fmus["first_order_lag"], store)
    missing = DockerBackend(image="localhost/validibot-not-built:0", docker_host=docker_url)
    out, launch = fmi.probe(record, store_uri=store, backend=missing, attempt="x")
    assert out.status == Status.FAILED_RUNTIME and launch.error
    (msg,) = out.messages
    assert msg.code == "BACKEND_ERROR"
    assert "image localhost/validibot-not-built:0 not found" in msg.text
    assert "`containers/build fmi localhost/validibot-not-built:0`" in msg.text


# --- hardening, abandonment and the sweep -------------------------------------------------------------------

ABANDON = textwrap.dedent("""
    import sys
    from validibot_pipelines.resources.backends.docker import DockerBackend
    DockerBackend(image=sys.argv[1], docker_host=sys.argv[2]).launch(sys.argv[3], run_id=sys.argv[4],
                                                                    timeout_seconds=600)
""")


def _wait_running(client, run_id: str, seconds: float = 60):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [c for c in _ours(client, run_id) if c.status == "running"]
        if found:
            return found[0]
        time.sleep(0.3)
    raise AssertionError(f"no running container for run {run_id}")


def test_hardening_then_control_plane_dies_and_the_sweep_removes_the_orphan(  # noqa: ANN001
        backend, docker_client, docker_url, worker_image, sample_fmus, tmp_path):
    from validibot_pipelines.orchestration.launch import launch_step

    store = (tmp_path / "store").as_uri()
    record = _accepted(sample_fmus["hang"], store)
    run_id = f"abandon-{uuid.uuid4().hex[:8]}"

    class Recorder:  # writes the envelope as the control plane would, then hands the launch to a child process
        def launch(self, input_uri, *, run_id, timeout_seconds, context=None):  # noqa: ANN001, ANN202
            self.input_uri = input_uri
            raise _Stop

    class _Stop(Exception):
        pass

    recorder = Recorder()
    inputs = fmi.simulation_inputs(record, 600).model_dump(mode="json")
    with pytest.raises(_Stop):
        launch_step(store_uri=store, run_id=run_id, validator=fmi.SIMULATION_VALIDATOR,
                    files=[record.input_file("fmu")], inputs=inputs, backend=recorder, timeout_seconds=600)
    control_plane = subprocess.Popen([sys.executable, "-c", ABANDON, worker_image, docker_url,
                                      recorder.input_uri, run_id], start_new_session=True)
    try:
        container = _wait_running(docker_client, run_id)
        # --- hardening, as the engine reports it and as the worker experiences it ---
        host = container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        # Docker reports ["ALL"]; podman expands it into every capability it would otherwise grant.
        dropped = {c.upper().removeprefix("CAP_") for c in host["CapDrop"]}
        assert "ALL" in dropped or dropped >= {"CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETUID", "SETGID",
                                               "NET_BIND_SERVICE", "SYS_CHROOT", "NET_RAW"}
        assert not host.get("CapAdd")
        assert any("no-new-privileges" in opt for opt in host["SecurityOpt"])
        assert host["NetworkMode"] == "none"
        assert host["PidsLimit"] == 512 and host["Memory"] == 4 * 1024**3 and host["NanoCpus"] == 2 * 10**9
        assert "/tmp" in host["Tmpfs"]
        assert container.attrs["Config"]["User"] == "10001:10001"
        labels = container.labels
        assert labels["org.validibot.managed"] == "true" and labels["org.validibot.run_id"] == run_id
        assert labels["org.validibot.validator"] == "fmi-simulation"
        assert labels["org.validibot.timeout_seconds"] == "600"
        started = datetime.fromisoformat(labels["org.validibot.started_at"])
        assert abs((datetime.now(UTC) - started).total_seconds()) < 120

        def inside(cmd: str) -> tuple[int, str]:
            code, out = container.exec_run(["python", "-c", cmd])
            return code, out.decode()

        assert inside("import os; print(os.getuid(), os.getgid())") == (0, "10001 10001\n")
        assert inside("print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])")[1].strip() == \
            "0000000000000000"
        assert "Read-only file system" in inside("open('/opt/venv/evil', 'w')")[1]
        assert inside("import os; print(sorted(os.listdir('/sys/class/net')))")[1].strip() == "['lo']"
        # Only what the envelope names is mounted: the model's folder read-only, the bundle read-write.
        mounts = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
        model_dir = str(Path(record.input_file("fmu").uri.removeprefix("file://")).parent)
        bundle = str(Path(recorder.input_uri.removeprefix("file://")).parent)
        assert mounts == {model_dir: False, bundle: True}
        mountinfo = inside("print(open('/proc/self/mountinfo').read())")[1]
        assert any(f" {model_dir} " in line and " ro," in line for line in mountinfo.splitlines())

        # --- the control plane dies (SIGKILL: no finally, no cleanup) ---
        control_plane.send_signal(signal.SIGKILL)
        control_plane.wait(timeout=30)
        time.sleep(1)
        container.reload()
        assert container.status == "running", "an abandoned worker keeps running until something removes it"

        # A sweep now leaves it (younger than timeout + grace); one past the deadline removes it.
        assert backend.sweep() == []
        assert _ours(docker_client, run_id)
        later = started + timedelta(seconds=600 + backend.sweep_grace_seconds + 1)
        (swept,) = [s for s in backend.sweep(now=later) if s.run_id == run_id]
        assert swept.container_id == container.id and swept.status == "running"
        assert not _ours(docker_client, run_id)
    finally:
        if control_plane.poll() is None:
            control_plane.kill()
        for leftover in _ours(docker_client, run_id):
            leftover.remove(force=True)


def _managed_sleeper(client, image: str, *, age_seconds: float, timeout: float) -> object:  # noqa: ANN001
    """A managed container started ``age_seconds`` ago (by its label), as a crashed control plane leaves it."""
    run_id = f"sleeper-{uuid.uuid4().hex[:8]}"
    labels = container_labels(run_id=run_id, validator="fmi-simulation", timeout_seconds=timeout,
                              started_at=datetime.now(UTC) - timedelta(seconds=age_seconds))
    return client.containers.run(image, entrypoint=["python", "-c", "import time; time.sleep(600)"], detach=True,
                                 labels=labels, network_mode="none", read_only=True)


def test_sensor_and_cleanup_command_remove_orphans(backend, docker_client, docker_url, worker_image, capsys):  # noqa: ANN001
    from dagster import SkipReason, build_sensor_context

    from validibot_pipelines.cli import main
    from validibot_pipelines.sensors.docker_sweep import docker_orphan_sweep

    expired = _managed_sleeper(docker_client, worker_image, age_seconds=3 * 3600, timeout=60)
    young = _managed_sleeper(docker_client, worker_image, age_seconds=5, timeout=3600)
    try:
        # Docker for the meshing validator only: every registered validator's backend is swept, not just FMI's.
        local = {f"{name}_backend": LocalSubprocessBackend() for name in REGISTERED}
        with build_sensor_context(resources={**local, "mesh_backend": backend}) as context:
            result = docker_orphan_sweep(context)
        assert isinstance(result, SkipReason)
        assert expired.name in result.skip_message and young.name not in result.skip_message
        assert not docker_client.containers.list(all=True, filters={"id": expired.id})
        assert docker_client.containers.list(all=True, filters={"id": young.id})

        # Nothing Docker configured: the sensor says so and touches nothing.
        with build_sensor_context(resources=local) as context:  # the local backend's run lifecycle
            idle = docker_orphan_sweep(context)
        assert "no DockerBackend configured" in idle.skip_message

        # The operator's command: by age it keeps the young one; --all removes it.
        assert main(["docker-cleanup", "--docker-host", docker_url]) == 0
        assert docker_client.containers.list(all=True, filters={"id": young.id})
        assert main(["docker-cleanup", "--docker-host", docker_url, "--all"]) == 0
        assert f"removed {young.name}" in capsys.readouterr().out
        assert not docker_client.containers.list(all=True, filters={"id": young.id})
    finally:
        for c in (expired, young):
            try:
                c.remove(force=True)
            except Exception:  # noqa: BLE001 - already removed, which is the point
                pass


def test_cleanup_command_reports_an_unreachable_engine(tmp_path, capsys):  # noqa: ANN001
    from validibot_pipelines.cli import main

    assert main(["docker-cleanup", "--docker-host", f"unix://{tmp_path}/none.sock"]) == 2
    assert "cannot reach the container engine" in capsys.readouterr().err


def test_launch_reports_an_unreachable_engine(sample_fmus, tmp_path):  # noqa: ANN001
    store = (tmp_path / "store").as_uri()
    record = _accepted(sample_fmus["first_order_lag"], store)
    down = DockerBackend(docker_host=f"unix://{tmp_path}/none.sock")
    out, _ = fmi.probe(record, store_uri=store, backend=down, attempt="x")
    assert out.status == Status.FAILED_RUNTIME
    assert "cannot reach the container engine" in out.messages[0].text and "DOCKER_HOST" in out.messages[0].text



# --- a store behind the network -----------------------------------------------------------------------------


def test_s3_store_gets_network_and_endpoint_settings_and_no_mounts(docker_url, worker_image, docker_client,  # noqa: ANN001
                                                                    s3_bucket, sample_fmus, tmp_path):
    from validibot_pipelines.envelopes import load_input_envelope
    from validibot_pipelines.storage import get_store

    record = _accepted(sample_fmus["first_order_lag"], s3_bucket)
    # moto listens on the host's loopback, so the worker joins the host network here; the default for a
    # cloud store is the engine's bridge network.
    backend = DockerBackend(image=worker_image, docker_host=docker_url, network="host")
    out, launch = fmi.simulate(record, store_uri=s3_bucket, backend=backend, attempt="s3",
                               simulation_timeout_seconds=60)
    assert out.status == Status.SUCCESS, out.messages
    assert out.outputs["timeseries_uri"].startswith(f"{s3_bucket}/runs/")
    assert get_store(out.outputs["timeseries_uri"]).exists(out.outputs["timeseries_uri"])
    assert launch.details["network"] == "host"

    input_uri = f"{s3_bucket}/runs/{out.run_id}/input.json"
    envelope = load_input_envelope(get_store(input_uri).read_bytes(input_uri), where=input_uri)
    spec = DockerBackend(image=worker_image).container_spec(envelope, input_uri, out.run_id, 60)
    assert spec["network_mode"] == "bridge" and spec["mounts"] == []
    # Signed access (orchestration/access.py): the worker gets URLs, never the store's credentials or endpoint.
    assert set(spec["environment"]) == {"VALIDIBOT_INPUT_URI", "VALIDIBOT_RUN_ID"}
    assert launch.details["signed_by"] == "aws-access-key:testing"


def test_the_models_process_in_the_container_gets_no_store_credentials_and_the_limits(  # noqa: ANN001
        docker_url, worker_image, s3_bucket, tmp_path, monkeypatch):
    """Neither the container (signed URLs, no credentials) nor the FMU's own process inside it holds the store's
    credentials, and the model runs under the envelope's rlimits."""
    from tests.hostile_fmus import build_hostile

    backend = DockerBackend(image=worker_image, docker_host=docker_url, network="host")
    assert os.environ["AWS_SECRET_ACCESS_KEY"]  # set for moto by the s3 fixture: the control plane signs with it
    leak = _accepted(build_hostile("env_secrets", tmp_path / "fmus"), s3_bucket)
    out, _ = fmi.simulate(leak, store_uri=s3_bucket, backend=backend, attempt="leak", simulation_timeout_seconds=60)
    assert out.status == Status.SUCCESS, out.messages
    log = out.outputs["fmu_log"]
    assert any("leak AWS_SECRET_ACCESS_KEY=(unset)" in line for line in log), log
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in out.model_dump_json()

    hog = _accepted(build_hostile("memory", tmp_path / "fmus"), s3_bucket)
    monkeypatch.setenv("VALIDIBOT_SANDBOX_MEMORY_BYTES", str(1024**3))  # read by launch_step for the envelope
    out, _ = fmi.simulate(hog, store_uri=s3_bucket, backend=backend, attempt="hog", simulation_timeout_seconds=60)
    assert out.status == Status.FAILED_VALIDATION
    assert [m.code for m in out.messages] == ["FMU_MEMORY_LIMIT"], out.messages


def test_file_store_gets_no_network_and_no_credentials(worker_image, sample_fmus, tmp_path, monkeypatch):  # noqa: ANN001
    from validibot_pipelines.envelopes import load_input_envelope
    from validibot_pipelines.orchestration.launch import launch_step

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak")
    store = (tmp_path / "store").as_uri()
    record = _accepted(sample_fmus["first_order_lag"], store)
    seen = {}

    class Capture:
        def launch(self, input_uri, *, run_id, timeout_seconds, context=None):  # noqa: ANN001, ANN202
            envelope = load_input_envelope(Path(input_uri.removeprefix("file://")).read_bytes())
            seen.update(DockerBackend(image=worker_image).container_spec(envelope, input_uri, run_id, 60))
            raise RuntimeError("captured")

    with pytest.raises(RuntimeError, match="captured"):
        launch_step(store_uri=store, run_id="spec-only", validator=fmi.PROBE_VALIDATOR,
                    files=[record.input_file("fmu")], inputs={"kind": "fmi_probe"}, backend=Capture(),
                    timeout_seconds=60)
    assert seen["network_mode"] == "none"
    assert set(seen["environment"]) == {"VALIDIBOT_INPUT_URI", "VALIDIBOT_RUN_ID"}
    input_uri = seen["environment"]["VALIDIBOT_INPUT_URI"]
    envelope = load_input_envelope(Path(input_uri.removeprefix("file://")).read_bytes())
    with pytest.raises(ValueError, match="never runs as root"):
        DockerBackend(user="0:0").container_spec(envelope, input_uri, "x", 60)


def test_a_red_team_fmu_in_a_docker_worker_finds_no_credential_and_cannot_alter_another_verdict(  # noqa: ANN001
        docker_url, docker_client, worker_image, s3_endpoint, sample_fmus, tmp_path, monkeypatch):
    """On a store that enforces authentication (moto with IAM on, presigned URLs verified by the gateway): the
    running container's environment — inspected through podman's API — holds no storage credential, and a model
    that hunts for credentials and PUTs a forged verdict over the network changes nothing."""
    import threading

    from tests.enforced_stores import enforced_s3
    from tests.hostile_fmus import build_hostile
    from validibot_pipelines.orchestration.launch import model_run_id
    from validibot_pipelines.storage import get_store

    with enforced_s3(monkeypatch) as s3:
        store = s3["bucket"]
        backend = DockerBackend(image=worker_image, docker_host=docker_url, network="host")
        victim = _accepted(sample_fmus["first_order_lag"], store)
        out, _ = fmi.simulate(victim, store_uri=store, backend=backend, attempt="victim", simulation_timeout_seconds=60)
        assert out.status == Status.SUCCESS, out.messages
        victim_output = f"{store}/runs/{out.run_id}/output.json"
        before = get_store(victim_output).read_bytes(victim_output)
        moto = s3["moto"].removeprefix("http://")
        hostile = _accepted(build_hostile("store", tmp_path / "fmus", target=f"{moto}/{victim_output[5:]}"), store)
        run_id = model_run_id(hostile, "simulation", "red")
        result: dict = {}

        def red_team() -> None:
            result["out"], result["launch"] = fmi.simulate(hostile, store_uri=store, backend=backend, attempt="red",
                                                           simulation_timeout_seconds=60)

        thread = threading.Thread(target=red_team)
        thread.start()
        env: list[str] = []
        while thread.is_alive() and not env:
            for container in _ours(docker_client, run_id):
                with contextlib.suppress(Exception):
                    env = container.attrs["Config"]["Env"] or []
            time.sleep(0.05)
        thread.join(timeout=300)
        assert env, "the worker container was never seen running"
        names = {item.split("=", 1)[0] for item in env}
        assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                            "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"}, names
        assert not any(os.environ["AWS_SECRET_ACCESS_KEY"] in item for item in env)
        assert any(item.startswith("VALIDIBOT_INPUT_URI=http") and "X-Amz-Signature" in item for item in env)
        red = result["out"]
        assert red.status == Status.SUCCESS, red.messages
        log = "\n".join(red.outputs["fmu_log"])
        # The container has the host's network (for its signed URLs), but the model runs in bubblewrap inside it
        # (nested_sandbox, VALIDIBOT_SANDBOX=auto): no network at all.
        assert "store attack: cannot connect" in log, log
        assert "found " not in log, log
        assert result["launch"].details["signed_by"] == s3["signer"]
        assert get_store(victim_output).read_bytes(victim_output) == before

        # Without the nested sandbox (container mode) the model shares the container's network: it reaches the
        # store, which refuses an unsigned request — credentials are what it lacks, and the verdict stays.
        flat = backend.model_copy(update={"nested_sandbox": False})
        monkeypatch.setenv("VALIDIBOT_REPLAY_VERDICTS", "0")  # run it again, not replay the first verdict
        red, _ = fmi.simulate(hostile, store_uri=store, backend=flat, attempt="red-flat", simulation_timeout_seconds=60)
        log = "\n".join(red.outputs["fmu_log"])
        assert "store attack: the store answered HTTP/1.1 403" in log and "found " not in log, log
        assert get_store(victim_output).read_bytes(victim_output) == before


# --- the EnergyPlus variant of the image --------------------------------------------------------------------


@pytest.fixture(scope="session")
def energyplus_image(docker_client, worker_image, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: ANN001
    build_worker_image(docker_client, tmp_path_factory.mktemp("build-ep") / "context", tag=ENERGYPLUS_IMAGE,
                       validator="energyplus")
    return ENERGYPLUS_IMAGE


def test_energyplus_image_runs_the_annual_box_like_the_local_backend(docker_url, docker_client,  # noqa: ANN001
                                                                     energyplus_image, tmp_path):
    from validibot_pipelines.validators.energyplus import launch as energyplus
    from validibot_pipelines.validators.energyplus.samples import sample_idf

    store = (tmp_path / "store").as_uri()
    spec = tmp_path / "box.validation.yaml"
    spec.write_text("weather: Chicago\noutputs: [Zone Mean Air Temperature]\n")
    record = _accepted(sample_idf("one_zone_box"), store, spec)
    backend = DockerBackend(image=energyplus_image, docker_host=docker_url)
    out, launch = energyplus.simulate(record, store_uri=store, backend=backend, attempt="docker")
    ref, _ = energyplus.simulate(record, store_uri=store, backend=LocalSubprocessBackend(), attempt="local")
    assert out.status == Status.SUCCESS, out.messages
    assert launch.backend == "docker" and launch.image == ENERGYPLUS_IMAGE and not _ours(docker_client, out.run_id)
    assert out.outputs["metrics"] == ref.outputs["metrics"]
    assert out.outputs["energyplus_version"] == ref.outputs["energyplus_version"]


# --- the meshing variant of the image -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def mesh_image(docker_client, worker_image, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: ANN001
    build_worker_image(docker_client, tmp_path_factory.mktemp("build-mesh") / "context", tag=MESH_IMAGE,
                       validator="mesh")
    return MESH_IMAGE


def test_mesh_image_meshes_a_part_like_the_local_backend(docker_url, docker_client, mesh_image,  # noqa: ANN001
                                                         cad_parts, tmp_path):
    """Gmsh (and its per-strategy child processes) run inside the hardened container: read-only root, no
    network, non-root — and give the same mesh as the local backend."""
    from validibot_pipelines.validators.mesh import launch as mesh

    store = (tmp_path / "store").as_uri()
    spec = tmp_path / "box.step.validation.yaml"
    spec.write_text("quality: {sicn_min: 0.2}\n")
    record = _accepted(cad_parts["box"], store, spec)
    backend = DockerBackend(image=mesh_image, docker_host=docker_url)
    preview, launch = mesh.preview(record, store_uri=store, backend=backend, attempt="docker")
    assert preview.status == Status.SUCCESS, preview.messages
    assert launch.backend == "docker" and launch.image == MESH_IMAGE and not _ours(docker_client, preview.run_id)
    out, _ = mesh.mesh(record, store_uri=store, backend=backend, attempt="docker")
    ref, _ = mesh.mesh(record, store_uri=store, backend=LocalSubprocessBackend(), attempt="local")
    assert out.status == Status.SUCCESS, out.messages
    for key in ("strategy", "total_elements", "total_nodes", "targets_met"):
        assert out.outputs[key] == ref.outputs[key], key
    assert out.outputs["sicn_min"] == pytest.approx(ref.outputs["sicn_min"])


# --- the XML variant of the image, and every image's metadata label -----------------------------------------


@pytest.fixture(scope="session")
def xml_image(docker_client, worker_image, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: ANN001
    build_worker_image(docker_client, tmp_path_factory.mktemp("build-xml") / "context", tag=XML_IMAGE,
                       validator="xml")
    return XML_IMAGE


def test_xml_image_validates_like_the_local_backend_and_declares_its_validator(  # noqa: ANN001
        docker_url, docker_client, xml_image, worker_image, tmp_path, capsys, monkeypatch):
    """lxml's XSD validation runs inside the hardened container (the sandbox's container mode); the image's
    org.validibot.validator.metadata label names the validator the registry has, and `validibot validators
    --images` reads it back."""
    from validibot_pipelines.cli import main
    from validibot_pipelines.validators import METADATA_LABEL
    from validibot_pipelines.validators.registry import get, metadata
    from validibot_pipelines.validators.xml import launch as xml
    from validibot_pipelines.validators.xml.validator import SAMPLES_DIR

    store = (tmp_path / "store").as_uri()
    model = tmp_path / "campus.xml"
    model.write_text((SAMPLES_DIR / "building.xml").read_text().replace("1200.5", "large"))
    (tmp_path / "building.xsd").write_text((SAMPLES_DIR / "building.xsd").read_text())
    spec = tmp_path / "campus.xml.validation.yaml"
    spec.write_text("xsd: building.xsd\n")
    record = _accepted(model, store, spec)
    backend = DockerBackend(image=xml_image, docker_host=docker_url)
    out, launch = xml.validate_schema(record, store_uri=store, backend=backend, attempt="docker")
    ref, _ = xml.validate_schema(record, store_uri=store, backend=LocalSubprocessBackend(), attempt="local")
    assert launch.backend == "docker" and launch.image == XML_IMAGE and not _ours(docker_client, out.run_id)
    assert out.status == ref.status == Status.FAILED_VALIDATION, out.messages
    assert out.outputs["findings"] == ref.outputs["findings"] and out.outputs["error_count"] == 1
    for image, name in ((xml_image, "xml"), (worker_image, "fmi")):
        label = json.loads(docker_client.images.get(image).labels[METADATA_LABEL])
        assert label == metadata(get(name))
    monkeypatch.setenv("VALIDIBOT_XML_DOCKER_IMAGE", xml_image)
    capsys.readouterr()
    missing = "localhost/validibot-none:test"
    assert main(["validators", "--images", xml_image, missing, "--docker-host", docker_url]) == 0
    shown = capsys.readouterr().out
    assert f"{xml_image}: validator xml 0.1.0 (.xml), code xml@0.1.0" in shown
    assert f"{missing}: not built" in shown
