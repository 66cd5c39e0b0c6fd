"""``launch_batch`` on the Docker, Modal and Cloud Run Jobs backends: one launch serves several FMI models, and
each model still gets exactly what a launch of its own gives it — and fails alone.

* Docker (podman's Docker API, the real worker image): ONE hardened container per batch, the manifest and every
  envelope's folders mounted once each.
* Modal (the seam's local stand-in): the function mapped over the batch, one call per envelope, each FMU
  uploaded to the cache volume once; a call past its timeout is cancelled alone.
* Cloud Run Jobs (the local job runner on gcp-storage-emulator): ONE execution with a task per envelope (up to
  ``max_tasks_per_execution``), each task taking its shard of the manifest; every envelope is collected from
  its own bundle — by ``collect_step`` and by the output sensor — and a task that dies fails only its envelopes.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backend_helpers import (
    cloudrun_stand_in,
    drain,
    envelope_of_reference,
    instance_in,
    latest,
    materializations,
    merged_outputs,
    pipeline_on,
)
from validibot_pipelines.envelopes import OutputEnvelope, Status
from validibot_pipelines.orchestration.batching import together
from validibot_pipelines.orchestration.launch import collect_step, model_run_id
from validibot_pipelines.orchestration.layout import bundle_uri
from validibot_pipelines.orchestration.models import ModelRecord, intake
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.cloudrun import read_launch
from validibot_pipelines.resources.backends.cloudrun_stand_in import JobSpec, LocalJobRunner
from validibot_pipelines.resources.backends.docker import DockerBackend
from validibot_pipelines.resources.backends.modal import ModalBackend
from validibot_pipelines.resources.backends.modal_client import LocalModalStandIn
from validibot_pipelines.runtime.batch import read_manifest
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.validators.fmi import launch as fmi
from validibot_pipelines.validators.fmi.samples.build import build_fmu


@pytest.fixture(autouse=True)
def _compute_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch and the single launches run the same inputs: each must really run, not replay the other."""
    monkeypatch.setenv("VALIDIBOT_REPLAY_VERDICTS", "0")


def _models(root: str, sample_fmus: dict[str, Path], names: dict[str, str]) -> list[ModelRecord]:
    """Intake ``{model name: sample}`` into ``<root>/store`` through ``<root>/landing``, in that order."""
    records = []
    for name, sample in names.items():
        uri = join_uri(root, "landing", name)
        get_store(uri).upload_file(sample_fmus[sample], uri)
        record = intake(uri, store_uri=join_uri(root, "store"), model_name=name)
        assert record.accepted, record.findings
        records.append(record)
    return records


def _simulate_together(records: list[ModelRecord], store: str, backend: Any, attempt: str,
                       **kwargs: Any) -> list[tuple[OutputEnvelope | None, LaunchRecord]]:
    """Every model's simulation at once: their launches gathered into the backend's ``launch_batch``."""
    return together(records, lambda r, b: fmi.simulate(r, store_uri=store, backend=b, attempt=attempt,
                                                       simulation_timeout_seconds=60, **kwargs), backend)


def _alone(records: list[ModelRecord], store: str, backend: Any,
           attempt: str = "alone") -> list[tuple[OutputEnvelope | None, LaunchRecord]]:
    return [fmi.simulate(r, store_uri=store, backend=backend, attempt=attempt, simulation_timeout_seconds=60)
            for r in records]


def _verdict(out: OutputEnvelope) -> dict[str, Any]:
    """A model's result without what names its run (ids, bundles, timings)."""
    outputs = {k: v for k, v in out.outputs.items() if k not in ("timeseries_uri", "execution_seconds")}
    return {"status": out.status.value, "outputs": outputs, "codes": [m.code for m in out.messages],
            "artifacts": [a.sha256 for a in out.artifacts]}


def _input_uri(store: str, record: ModelRecord, attempt: str) -> str:
    return join_uri(bundle_uri(store, model_run_id(record, "simulation", attempt)), "input.json")


def _assert_only_the_crash_failed(outs: list[OutputEnvelope], crash_index: int) -> None:
    for i, out in enumerate(outs):
        if i == crash_index:
            assert out.status == Status.FAILED_VALIDATION, out.messages
            assert "FMU_CRASHED" in [m.code for m in out.messages], out.messages
        else:
            assert out.status == Status.SUCCESS, out.messages
            assert abs(out.outputs["output_values"]["y"] - 2.0 * (1 - 2.718281828459045 ** -6)) < 1e-6


NAMES = {"x/lag.fmu": "first_order_lag", "y/lag.fmu": "first_order_lag", "z/crash.fmu": "crash"}
CRASH = 2  # the index of z/crash.fmu: two names of one model's bytes, and a model that segfaults


# --- Docker: one container per batch ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.docker_engine import podman_service

    if shutil.which("podman") is None:
        pytest.skip("no container engine: podman is not installed")
    try:
        with podman_service(tmp_path_factory.mktemp("podman")) as url:
            yield url
    except RuntimeError as exc:
        pytest.skip(f"no container engine: {exc}")


@pytest.fixture(scope="module")
def worker_image(docker_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    import docker

    from tests.docker_engine import WORKER_IMAGE, build_worker_image, ensure_base_image

    client = docker.DockerClient(base_url=docker_url)
    ensure_base_image(client)
    build_worker_image(client, tmp_path_factory.mktemp("build") / "context")  # today's worker: batch entry point
    return WORKER_IMAGE


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``containers.create`` the backend asks the engine for (its spec), in order."""
    from docker.models.containers import ContainerCollection

    specs: list[dict[str, Any]] = []
    create = ContainerCollection.create

    def counted(self: ContainerCollection, image: str, **spec: Any) -> Any:
        specs.append(spec)
        return create(self, image, **spec)

    monkeypatch.setattr(ContainerCollection, "create", counted)
    return specs


def test_docker_runs_a_batch_in_one_container_and_each_model_gets_its_own_result(  # noqa: ANN001
        docker_url, worker_image, sample_fmus, tmp_path, created):
    import docker

    root = (tmp_path / "root").resolve().as_uri()
    store = join_uri(root, "store")
    records = _models(root, sample_fmus, NAMES)
    backend = DockerBackend(image=worker_image, docker_host=docker_url)
    batch = _simulate_together(records, store, backend, "batch")
    assert len(created) == 1, "a batch is ONE container"
    (spec,) = created
    alone = _alone(records, store, backend)
    assert len(created) == 1 + len(records)

    outs = [out for out, _ in batch]
    _assert_only_the_crash_failed(outs, CRASH)
    assert [_verdict(o) for o in outs] == [_verdict(o) for o, _ in alone]

    # One container served every model: one launch id, the manifest naming the three envelopes in order.
    launches = [launch for _, launch in batch]
    assert len({launch.launch_id for launch in launches}) == 1 and len(launches[0].launch_id) == 64
    manifest = launches[0].details["batch"]
    order = read_manifest(manifest)  # the order the models asked to launch in
    assert sorted(order) == sorted(_input_uri(store, r, "batch") for r in records)
    assert [launch.details["batch_index"] for launch in launches] == [
        order.index(_input_uri(store, r, "batch")) for r in records]
    assert all(launch.returncode == 0 and not launch.timed_out and not launch.error for launch in launches)
    # The batch's summary line goes to the envelope whose run id names the batch: the first to ask, whichever.
    assert any(f"batch {manifest}: 3 of 3 envelope(s) answered" in launch.log_tail for launch in launches)
    assert not docker.DockerClient(base_url=docker_url).containers.list(
        all=True, filters={"id": launches[0].launch_id})  # removed after the run

    # The worker got the manifest, not one envelope; the hardening and limits of a single launch; the deadline of
    # three envelopes; and each folder once: both models' folders read-only (the two names of one model's bytes
    # share one), each bundle read-write, the manifest file itself read-only.
    assert spec["environment"]["VALIDIBOT_BATCH_URI"] == manifest and "VALIDIBOT_INPUT_URI" not in spec["environment"]
    single = created[1]
    hardening = ("user", "network_mode", "mem_limit", "nano_cpus", "pids_limit", "read_only", "tmpfs", "cap_drop",
                 "security_opt")
    assert {k: spec[k] for k in hardening} == {k: single[k] for k in hardening}
    assert spec["network_mode"] == "none"
    # The batch is named after the first model to ask, whichever that was.
    assert any(spec["labels"]["org.validibot.run_id"].startswith(model_run_id(r, "simulation", "batch"))
               for r in records)
    assert int(spec["labels"]["org.validibot.timeout_seconds"]) == 3 * int(single["labels"][
        "org.validibot.timeout_seconds"])
    mounts = {(m["Target"], m["ReadOnly"]) for m in spec["mounts"]}
    assert len(mounts) == len(spec["mounts"]), "a folder mounted twice"
    path = lambda uri: uri.removeprefix("file://")  # noqa: E731
    expected = {(path(manifest), True)}
    expected |= {(str(Path(path(r.canonical_uri)).parent), True) for r in records}
    expected |= {(path(bundle_uri(store, model_run_id(r, "simulation", "batch"))), False) for r in records}
    assert mounts == expected and len(expected) == 1 + 2 + 3


# --- Modal: one call per envelope ---------------------------------------------------------------------------


STAND_INS: list[LocalModalStandIn] = []  # every client SharedModal made, in order


class SharedModal(ModalBackend):
    """The Modal backend on the stand-in, keeping each client it makes so a test can look at its calls."""

    fail_op: str = ""

    def client(self) -> LocalModalStandIn:
        from modal.exception import AuthError

        fail = {self.fail_op: AuthError("Token ID is malformed")} if self.fail_op else {}
        stand_in = LocalModalStandIn(Path(self.stand_in_volume_dir), cache_volume=self.cache_volume, fail=fail)
        STAND_INS.append(stand_in)
        return stand_in


def _modal(tmp_path: Path, **fields: Any) -> SharedModal:
    STAND_INS.clear()
    return SharedModal(app_name="validibot-fmi", cache_volume="fmi-cache-test",
                       stand_in_volume_dir=str(tmp_path / "volumes"), **fields)


def test_modal_maps_a_batch_one_call_per_envelope_and_uploads_each_fmu_once(local_root, sample_fmus, tmp_path):  # noqa: ANN001
    store = join_uri(local_root, "store")
    records = _models(local_root, sample_fmus, NAMES)
    batch = _simulate_together(records, store, _modal(tmp_path), "batch")
    (client,) = STAND_INS
    alone = _alone(records, store, _modal(tmp_path / "fresh"))

    outs = [out for out, _ in batch]
    _assert_only_the_crash_failed(outs, CRASH)
    assert [_verdict(o) for o in outs] == [_verdict(o) for o, _ in alone]

    # Mapped: ONE spawn_map of three calls, each envelope its own call id, record and log.
    launches = [launch for _, launch in batch]
    ids = [launch.launch_id for launch in launches]
    assert len(client.maps) == 1 and sorted(client.maps[0]) == sorted(ids) and len(set(ids)) == 3
    assert set(client.calls) == set(ids) and all(launch.launch_id.startswith("fc-local-") for launch in launches)
    assert [client.maps[0].index(launch.launch_id) for launch in launches] == [
        launch.details["batch_index"] for launch in launches]
    assert all(launch.image == "validibot-fmi/run_fmi_simulation" and launch.returncode == 0 for launch in launches)
    for record, launch in zip(records, launches, strict=True):
        assert launch.log_tail.count("running fmi-simulation") == 1  # its own call's log, nobody else's
        assert model_run_id(record, "simulation", "batch") in launch.log_tail
    # Two distinct FMUs for three envelopes: two uploads, each named in the records of the envelopes using it.
    assert sorted(client.uploads) == sorted({f"fmi-cache-test:/{r.sha256}.fmu" for r in records})
    assert launches[0].details["volume_uploads"] == launches[1].details["volume_uploads"] == \
        f"fmi-cache-test:/{records[0].sha256}.fmu"
    assert launches[2].details["volume_uploads"] == f"fmi-cache-test:/{records[2].sha256}.fmu"


def test_modal_batch_cancels_only_the_call_past_its_timeout(local_root, sample_fmus, tmp_path):  # noqa: ANN001
    store = join_uri(local_root, "store")
    records = _models(local_root, sample_fmus, {"ok.fmu": "first_order_lag", "stuck.fmu": "hang"})
    batch = _simulate_together(records, store, _modal(tmp_path, grace_seconds=0.0), "batch", timeout_seconds=12)
    (ok, ok_launch), (stuck, stuck_launch) = batch
    assert ok.status == Status.SUCCESS and not ok_launch.timed_out and not ok_launch.error
    assert stuck_launch.timed_out and f"Modal call {stuck_launch.launch_id} did not finish within 12 s and was " \
        "cancelled; raise worker_timeout_seconds" in stuck_launch.error
    assert stuck.status == Status.FAILED_RUNTIME and stuck.messages[0].code == "BACKEND_ERROR"
    assert STAND_INS[0].calls[stuck_launch.launch_id].proc.poll() is not None  # cancelled, not left running


def test_modal_refusing_the_map_fails_every_envelope_with_the_advice(local_root, sample_fmus, tmp_path):  # noqa: ANN001
    store = join_uri(local_root, "store")
    records = _models(local_root, sample_fmus, {"a.fmu": "first_order_lag", "b.fmu": "multi_output"})
    batch = _simulate_together(records, store, _modal(tmp_path, fail_op="spawn_map"), "batch")
    for out, launch in batch:
        assert launch.launch_id == "" and "modal token new" in launch.error
        assert out.status == Status.FAILED_RUNTIME and "modal token new" in out.messages[0].text
    assert STAND_INS[0].calls == {}


# --- Cloud Run Jobs: one execution, a task per envelope ----------------------------------------------------


def _new_requests(before: int) -> list:
    return LocalJobRunner.shared().requests[before:]


def _env(request: Any) -> dict[str, str]:
    return {e.name: e.value for e in request.overrides.container_overrides[0].env}


def test_cloudrun_runs_a_batch_as_one_execution_with_a_task_per_envelope(gcs_bucket, sample_fmus):  # noqa: ANN001
    store = join_uri(gcs_bucket, "store")
    records = _models(gcs_bucket, sample_fmus, NAMES)
    backend = cloudrun_stand_in()
    runner = LocalJobRunner.shared()
    before = len(runner.requests)
    batch = _simulate_together(records, store, backend, "batch", timeout_seconds=300)
    (request,) = _new_requests(before)
    assert all(out is None and launch.pending for out, launch in batch)  # asynchronous: collected later
    execution = batch[0][1].launch_id
    assert {launch.launch_id for _, launch in batch} == {execution}
    assert execution.startswith(request.name + "/executions/")

    # The request: the manifest, three tasks, each task's timeout that of the one envelope it takes.
    env = _env(request)
    inputs = [_input_uri(store, r, "batch") for r in records]
    # The order the models asked to launch in; each entry is the envelope's signed access grant.
    order = [envelope_of_reference(ref) for ref in read_manifest(env["VALIDIBOT_BATCH_URI"])]
    assert sorted(order) == sorted(inputs) and "VALIDIBOT_INPUT_URI" not in env
    assert request.overrides.task_count == 3 and request.overrides.timeout.total_seconds() == 300
    assert runner.wait(execution) == "SUCCEEDED"  # a model's crash is its verdict: every task succeeded
    assert runner.get_execution(execution).task_count == 3 and runner.task_statuses(execution) == ["SUCCEEDED"] * 3

    # Each bundle has its own launch record naming the execution and its task; each task ran its own envelope
    # (CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT), and the envelope's record shows that task's log.
    collected = []
    for record, uri in zip(records, inputs, strict=True):
        index = order.index(uri)
        launch = read_launch(uri.rsplit("/", 1)[0])
        assert launch["execution"] == execution and launch["input_uri"] == uri
        assert (launch["task_index"], launch["task_count"], launch["batch_index"]) == (index, 3, index)
        out, described = collect_step(uri)
        assert described.launch_id == execution and described.status == "SUCCEEDED"
        assert described.details["task_index"] == index
        assert model_run_id(record, "simulation", "batch") in described.log_tail
        assert described.log_tail.count("running fmi-simulation") == 1
        collected.append(out)
    _assert_only_the_crash_failed(collected, CRASH)

    before = len(runner.requests)
    alone = []
    for record in records:
        _, launch = fmi.simulate(record, store_uri=store, backend=backend, attempt="alone",
                                 simulation_timeout_seconds=60)
        runner.wait(launch.launch_id)
        alone.append(collect_step(_input_uri(store, record, "alone"))[0])
    assert [r.overrides.task_count for r in _new_requests(before)] == [1, 1, 1]
    assert [_verdict(o) for o in collected] == [_verdict(o) for o in alone]


def test_cloudrun_batch_larger_than_the_task_limit_shards_the_manifest(gcs_bucket, sample_fmus):  # noqa: ANN001
    store = join_uri(gcs_bucket, "store")
    records = _models(gcs_bucket, sample_fmus, {"a.fmu": "first_order_lag", "b.fmu": "multi_output",
                                                "c.fmu": "first_order_lag"})
    backend = cloudrun_stand_in().model_copy(update={"max_tasks_per_execution": 2})
    before = len(LocalJobRunner.shared().requests)
    batch = _simulate_together(records, store, backend, "batch", timeout_seconds=100)
    (request,) = _new_requests(before)
    # Two tasks for three envelopes: task 0 takes envelopes 0 and 2 of the manifest, task 1 envelope 1, each task
    # under twice the envelope timeout.
    assert request.overrides.task_count == 2 and request.overrides.timeout.total_seconds() == 200
    order = [envelope_of_reference(ref) for ref in read_manifest(_env(request)["VALIDIBOT_BATCH_URI"])]
    execution = batch[0][1].launch_id
    assert LocalJobRunner.shared().wait(execution) == "SUCCEEDED"
    for record in records:
        uri = _input_uri(store, record, "batch")
        assert read_launch(uri.rsplit("/", 1)[0])["task_index"] == order.index(uri) % 2
        out, described = collect_step(uri)
        assert out.status == Status.SUCCESS, out.messages
        assert model_run_id(record, "simulation", "batch") in described.log_tail
    task0, task1 = (LocalJobRunner.shared().logs(execution, task) for task in (0, 1))
    assert task0.count("running fmi-simulation") == 2 and task1.count("running fmi-simulation") == 1
    assert order[1].split("/")[-2] in task1 and order[1].split("/")[-2] not in task0


#: The real worker, except that task 1 of a batch execution dies at once without writing anything.
TASK_1_DIES = [sys.executable, "-c", "import os, runpy\n"
               "if os.environ.get('CLOUD_RUN_TASK_COUNT', '1') != '1' and os.environ['CLOUD_RUN_TASK_INDEX'] == '1':\n"
               "    os._exit(139)\n"
               "runpy.run_module('validibot_pipelines.runtime', run_name='__main__')\n"]


def test_output_sensor_collects_each_envelope_of_a_batch_execution_and_a_dead_task_fails_only_its_own(  # noqa: ANN001
        gcs_bucket, tmp_path, sample_fmus, monkeypatch):
    """Through Dagster: three new uploads are one sensor run, whose probe step is ONE execution of three tasks.
    The output sensor collects each model from its own bundle; the model of the task that died is collected once
    the execution ended (FAILED, as one task failed) as failed_runtime naming the execution; the others go on to
    their simulations."""
    monkeypatch.setenv("VALIDIBOT_SENSOR_BATCH_SIZE", "25")
    LocalJobRunner.shared().deploy("validibot-fmi-task1-dies", JobSpec(command=TASK_1_DIES))
    runner = LocalJobRunner.shared()
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in("validibot-fmi-task1-dies"))
        for variant in ("a", "b", "c"):
            p.drop(build_fmu("first_order_lag", tmp_path / "fmus", variant=variant))
        before = len(runner.requests)
        launched = p.tick()
        assert len(launched) == 3 and len({o.run_id for o in launched}) == 1  # one grouped run
        (request,) = _new_requests(before)
        assert request.overrides.task_count == 3 and "VALIDIBOT_BATCH_URI" in _env(request)
        runs = join_uri(p.store_uri, "runs")
        bundles = sorted(o.uri.rsplit("/", 1)[0] for o in get_store(runs).list(runs) if o.uri.endswith("/launch.json"))
        launches = {b: read_launch(b) for b in bundles}
        assert len(launches) == 3 and len({launch["execution"] for launch in launches.values()}) == 1
        dead = next(launch for launch in launches.values() if launch["task_index"] == 1)
        execution = dead["execution"]

        outcomes = drain(p, max_ticks=8)
        assert runner.wait(execution) == "FAILED" and runner.task_statuses(execution) == [
            "SUCCEEDED", "FAILED", "SUCCEEDED"]
        for launch in launches.values():
            partition = launch["partition"]
            probe = merged_outputs(outcomes, partition)["fmu_probe"]
            meta = latest(p, "fmu_probe", partition).metadata
            assert meta["launch_id"].value == execution
            if launch is dead:
                assert probe["status"] == "failed_runtime" and probe["messages"][0]["code"] == "WORKER_NO_OUTPUT"
                assert f"the cloudrun worker ({execution}) ended FAILED" in probe["messages"][0]["text"]
                assert "fmu_simulation" not in merged_outputs(outcomes, partition)
            else:
                assert probe["status"] == "success", probe["messages"]
                sim = merged_outputs(outcomes, partition)["fmu_simulation"]
                assert sim["status"] == "success" and 1.99 < sim["outputs"]["output_values"]["y"] < 2.0
                sim_meta = latest(p, "fmu_simulation", partition).metadata
                assert sim_meta["launch_id"].value != execution  # its simulation: a launch of its own
        # Collected once each: nothing more for the sensor to do, no marker left.
        assert drain(p) == []
        assert list(get_store(runs).list(join_uri(p.store_uri, "launches"))) == []
        for launch in launches.values():  # the batch run's "launched" placeholder, then the one collected result
            states = [m.metadata["status"].value for m in materializations(p, "fmu_probe", launch["partition"])]
            assert sorted(states) == sorted(["launched", "failed_runtime" if launch is dead else "success"]), states
