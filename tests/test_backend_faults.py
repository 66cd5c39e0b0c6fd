"""Faults on the asynchronous path (Cloud Run Jobs stand-in + GCS output sensor) and in storage.

Worker crashes, worker hangs past the task timeout, malformed output, output for an unknown run, duplicate
output, sensor restarted mid-stream, replay of an existing output, transient upload failure. Everything runs
against gcp-storage-emulator, real SQLite Dagster instances and the real worker.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.backend_helpers import (
    cloudrun_stand_in,
    drain,
    instance_in,
    latest,
    materializations,
    merged_outputs,
    pipeline_on,
    wait_for_executions,
    write_envelope,
)
from tests.conftest import Pipeline
from validibot_pipelines.local_runner import tick
from validibot_pipelines.resources.backends.cloudrun_stand_in import JobSpec, LocalJobRunner
from validibot_pipelines.sensors import outputs
from validibot_pipelines.sensors.outputs import scan_outputs
from validibot_pipelines.storage import get_store, join_uri


def _bundles(store_uri: str, name: str = "input.json") -> list[str]:
    runs = join_uri(store_uri, "runs")
    return sorted(o.uri.rsplit("/", 1)[0] for o in get_store(runs).list(runs) if o.uri.endswith("/" + name))


@contextmanager
def _one_probe_executed(gcs_bucket: str, tmp_path: Path, fmu: Path) -> Iterator[tuple[Pipeline, str]]:
    """One upload whose probe was launched on the Cloud Run stand-in and has finished, its output not yet
    collected: the pipeline and the execution bundle (the one holding a launch record)."""
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in())
        p.drop(fmu)
        p.tick()
        wait_for_executions()
        (bundle,) = _bundles(p.store_uri, "launch.json")
        yield p, bundle


def test_worker_crash_is_collected_as_failed_runtime(gcs_bucket, tmp_path, sample_fmus):  # noqa: ANN001
    LocalJobRunner.shared().deploy("validibot-fmi-crash", JobSpec(command=[sys.executable, "-c",
                                                                           "import os; os._exit(139)"]))
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in("validibot-fmi-crash"))
        p.drop(sample_fmus["first_order_lag"])
        (first,) = p.tick()
        (collected,) = drain(p)  # no output ever comes: the sensor sees the FAILED execution instead
        probe = collected.outputs["fmu_probe"]
        assert probe["status"] == "failed_runtime" and probe["messages"][0]["code"] == "WORKER_NO_OUTPUT"
        assert "ended FAILED" in probe["messages"][0]["text"]
        assert collected.checks["probe_approved"][0] is False
        assert "fmu_simulation" not in collected.outputs  # a failed probe blocks the simulation
        assert latest(p, "fmu_probe", first.partition_key).metadata["launch_status"].value == "FAILED"


def test_worker_hanging_past_the_task_timeout_is_killed_and_collected(gcs_bucket, tmp_path, sample_fmus):  # noqa: ANN001
    LocalJobRunner.shared().deploy("validibot-fmi-hang", JobSpec(
        command=[sys.executable, "-c", "import time; time.sleep(600)"], grace_seconds=0.5))
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in("validibot-fmi-hang"), worker_timeout_seconds=2)
        p.drop(sample_fmus["first_order_lag"])
        p.tick()
        (collected,) = drain(p)
        probe = collected.outputs["fmu_probe"]
        assert probe["status"] == "failed_runtime"
        assert "timed out and was killed" in probe["messages"][0]["text"]


def test_malformed_output_becomes_failed_runtime(gcs_bucket, tmp_path, sample_fmus):  # noqa: ANN001
    with _one_probe_executed(gcs_bucket, tmp_path, sample_fmus["first_order_lag"]) as (p, bundle):
        out_uri = join_uri(bundle, "output.json")
        get_store(out_uri).write_bytes(out_uri, b'{"schema_version": "validibot.output.v1", "status": ')
        collected = tick(p.defs, p.instance, sensor_name="output_sensor")
        probe = collected[0].outputs["fmu_probe"]
        assert probe["status"] == "failed_runtime" and probe["messages"][0]["code"] == "WORKER_BAD_OUTPUT"


def _marker(store_uri: str, run_id: str) -> str:
    from validibot_pipelines.orchestration.layout import bundle_uri, launch_marker_uri

    return launch_marker_uri(bundle_uri(store_uri, run_id))


def test_output_for_an_unknown_run_is_ignored(gcs_bucket, tmp_path, sample_fmus):  # noqa: ANN001
    with _one_probe_executed(gcs_bucket, tmp_path, sample_fmus["first_order_lag"]) as (p, bundle):
        # A stray bundle: someone else's output with a copy of this launch record (wrong callback), indexed.
        stray = join_uri(p.store_uri, "runs", "stray-run")
        store = get_store(stray)
        store.write_bytes(join_uri(stray, "launch.json"), store.read_bytes(join_uri(bundle, "launch.json")))
        envelope = json.loads(store.read_bytes(join_uri(bundle, "input.json")))
        envelope["context"]["callback_id"] = "someone-else"
        store.write_bytes(join_uri(stray, "input.json"), json.dumps(envelope).encode())
        store.write_bytes(join_uri(stray, "output.json"), store.read_bytes(join_uri(bundle, "output.json")))
        store.write_bytes(_marker(p.store_uri, "stray-run"), b"{}")
        # And an output with no launch at all (a synchronous backend's bundle): not the sensor's business.
        store.write_bytes(join_uri(p.store_uri, "runs", "sync-run", "output.json"), b"{}")

        scan = scan_outputs(p.store_uri, None)
        assert [c.input_uri for c in scan.completions] == [join_uri(bundle, "input.json")]
        assert len(scan.ignored) == 1 and "stray-run: output for an unknown run" in scan.ignored[0]
        assert "someone-else" in scan.ignored[0]
        # Both markers are retired on the next tick (the stray one is reported once, not every tick).
        again = scan_outputs(p.store_uri, scan.cursor)
        assert again.completions == [] and again.ignored == []
        assert list(store.list(join_uri(p.store_uri, "launches"))) == []


def test_an_output_whose_partition_was_deleted_does_not_stop_the_sensor(gcs_bucket, tmp_path, sample_fmus):  # noqa: ANN001
    """A launch the code can no longer place (its model's partition deleted meanwhile) is reported and
    retired; the tick succeeds, so the other launches are still collected."""
    with _one_probe_executed(gcs_bucket, tmp_path, sample_fmus["first_order_lag"]) as (p, bundle):
        (partition,) = p.partitions()
        p.instance.delete_dynamic_partition("fmu_models", partition)
        assert tick(p.defs, p.instance, sensor_name="output_sensor") == []
        tick(p.defs, p.instance, sensor_name="output_sensor")  # retires the marker
        assert list(get_store(bundle).list(join_uri(p.store_uri, "launches"))) == []


def test_duplicate_output_never_applies_twice(gcs_bucket, tmp_path, sample_fmus):  # noqa: ANN001
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in())
        p.drop(sample_fmus["multi_output"])
        (first,) = p.tick()
        assert len(drain(p)) == 2
        sim_bundle = [b for b in _bundles(p.store_uri, "launch.json") if "-simulation-" in b][0]
        out_uri = join_uri(sim_bundle, "output.json")
        store = get_store(out_uri)
        store.write_bytes(out_uri, store.read_bytes(out_uri))  # re-delivered: same output, newer object
        assert scan_outputs(p.store_uri, None).completions == []  # its launch was collected: no marker left
        # A tick that died before its cursor was saved leaves the marker: the same run key is requested again…
        marker = _marker(p.store_uri, sim_bundle.rsplit("/", 1)[1])
        store.write_bytes(marker, b"{}")
        (again,) = scan_outputs(p.store_uri, None).completions
        assert again.input_uri == join_uri(sim_bundle, "input.json")
        assert tick(p.defs, p.instance, sensor_name="output_sensor") == []  # …and the run key fences it
        assert len(materializations(p, "fmu_simulation", first.partition_key)) == 1


def test_sensor_restarted_mid_stream_loses_and_doubles_nothing(gcs_bucket, tmp_path, sample_fmus, monkeypatch):  # noqa: ANN001
    monkeypatch.setattr(outputs, "MAX_PER_TICK", 1)  # one output per tick, so a restart lands mid-stream
    names = ["first_order_lag", "multi_output"]
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in())
        for name in names:
            p.drop(sample_fmus[name])
        assert len(p.tick()) == 2
        wait_for_executions()
        first = tick(p.defs, p.instance, sensor_name="output_sensor")
        assert len(first) == 1
        # "Restart": new Definitions and a new sensor context; only the cursor in the instance survives.
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in())
        rest = drain(p)
        outcomes = first + rest
        partitions = sorted(p.partitions())
        assert len(partitions) == 2
        for partition in partitions:
            assert len(materializations(p, "fmu_probe", partition)) == 1
            assert len(materializations(p, "fmu_simulation", partition)) == 1
            assert merged_outputs(outcomes, partition)["fmu_simulation"]["status"] == "success"
        assert drain(p) == []


def test_replay_reuses_the_existing_output(gcs_bucket, tmp_path, sample_fmus):  # noqa: ANN001
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in())
        p.drop(sample_fmus["first_order_lag"])
        p.tick()
        drain(p)
    (bundle,) = [b for b in _bundles(f"{gcs_bucket}/store", "launch.json") if "-probe-" in b]
    runner = LocalJobRunner.shared()
    before = len(runner.requests)
    record = cloudrun_stand_in().launch(join_uri(bundle, "input.json"), run_id="again", timeout_seconds=60)
    assert not record.pending and record.launch_id.startswith("replay:") and record.status == "SUCCEEDED"
    assert len(runner.requests) == before  # no new execution


def test_transient_upload_failure_is_retried_with_backoff(gcs_bucket, monkeypatch):  # noqa: ANN001
    store = get_store(gcs_bucket)
    http = store.client._http
    real = http.request
    calls: list[str] = []

    def flaky(method: str, url: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if method == "POST" and "/upload/" in url:
            calls.append(url)
            if len(calls) == 1:
                raise requests.exceptions.ConnectionError("connection reset by peer (injected)")
        return real(method, url, *args, **kwargs)

    monkeypatch.setattr(http, "request", flaky)
    uri = join_uri(gcs_bucket, "runs", "r1", "output.json")
    store.write_bytes(uri, b'{"ok": true}', "application/json")
    assert len(calls) == 2  # failed once, retried once
    monkeypatch.setattr(http, "request", real)
    assert store.read_bytes(uri) == b'{"ok": true}'


def test_output_sensor_work_per_tick_is_bounded(local_root):  # noqa: ANN001
    """≤ max_checks markers and ≤ max_status_checks status queries per tick; every launch is reached in turn;
    bundles without a marker (every synchronous run ever) are never listed."""
    store = get_store(local_root)
    for i in range(5):
        bundle = join_uri(local_root, "runs", f"r{i}")
        store.write_bytes(join_uri(bundle, "launch.json"), json.dumps({"execution": f"e{i}"}).encode())
        store.write_bytes(_marker(local_root, f"r{i}"), b"{}")
    for i in range(50):
        store.write_bytes(join_uri(local_root, "runs", f"sync{i}", "output.json"), b"{}")
    asked: list[str] = []

    def running(launch: dict) -> str:
        asked.append(launch["execution"])
        return "RUNNING"

    listed: list[str] = []
    real_list = type(store).list

    def spy(self, prefix: str):  # noqa: ANN001, ANN202
        listed.append(prefix)
        return real_list(self, prefix)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(store), "list", spy)
        cursor = None
        for _ in range(3):
            scan = scan_outputs(local_root, cursor, max_checks=3, max_status_checks=2, status_of=running)
            assert scan.completions == []
            cursor = scan.cursor
    assert len(asked) == 6 and set(asked) == {f"e{i}" for i in range(5)}  # 2 per tick, every launch reached
    assert listed == [join_uri(local_root, "launches")] * 3


def _launched_bundle(root: str, run_id: str, *, marker: bool = True, **launch: object) -> str:
    """A bundle as the Cloud Run backend leaves it: input envelope, launch record (+ fields), marker."""
    envelope, _ = write_envelope(root, run_id)
    bundle = envelope.context.execution_bundle_uri
    store = get_store(bundle)
    store.write_bytes(join_uri(bundle, "launch.json"), json.dumps(
        {"execution": f"e-{run_id}", "callback_id": run_id, "run_id": run_id, "asset": "fmu_probe",
         "partition": "p", **launch}).encode())
    if marker:
        store.write_bytes(_marker(root, run_id), b"{}")
    return bundle


def test_a_crashed_execution_without_output_is_collected_through_its_status(local_root):  # noqa: ANN001
    _launched_bundle(local_root, "crashed")
    assert scan_outputs(local_root, None, status_of=lambda _launch: "RUNNING").completions == []
    scan = scan_outputs(local_root, None, status_of=lambda _launch: "FAILED")
    assert [(c.callback_id, c.reason, c.partition) for c in scan.completions] == [("crashed", "FAILED", "p")]
    assert scan_outputs(local_root, scan.cursor, status_of=lambda _launch: "FAILED").completions == []


def test_status_checks_rotate_over_every_pending_launch(local_root):  # noqa: ANN001
    """More launches in flight than status checks per tick: each gets its turn, so a crash far down the list
    is still found (the output checks, which are cheap, see them all every tick)."""
    for i in range(30):
        _launched_bundle(local_root, f"r{i:02d}")
    asked: list[str] = []

    def running(launch: dict) -> str:
        asked.append(launch["run_id"])
        return "RUNNING"

    cursor = None
    for _ in range(3):
        cursor = scan_outputs(local_root, cursor, max_status_checks=20, status_of=running).cursor
    assert len(asked) == 60 and set(asked) == {f"r{i:02d}" for i in range(30)}


def test_a_launch_is_collected_only_after_the_run_that_launched_it_ended(local_root):  # noqa: ANN001
    """A backfill batch writes its models as 'launched' when its step ends: collecting an early model before
    then would let that placeholder overwrite the collected result."""
    bundle = _launched_bundle(local_root, "early", dagster_run_id="batch-run")
    get_store(bundle).write_bytes(join_uri(bundle, "output.json"), b"{}")
    busy = scan_outputs(local_root, None, launcher_finished=lambda run_id: run_id != "batch-run")
    assert busy.completions == []
    later = scan_outputs(local_root, busy.cursor, launcher_finished=lambda _run_id: True)
    assert [c.callback_id for c in later.completions] == ["early"]


def test_a_launch_that_never_reached_cloud_run_is_collected_as_failed(local_root):  # noqa: ANN001
    """The launching process died between writing the launch record and run_job's answer: no execution name,
    so no status to ask — after a grace period it is collected as failed instead of pending forever."""
    from datetime import UTC, datetime, timedelta

    from validibot_pipelines.resources.backends.cloudrun import describe_launch

    long_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    bundle = _launched_bundle(local_root, "orphan", execution="", launched_at=long_ago, stand_in=True)
    _launched_bundle(local_root, "fresh", execution="", launched_at=datetime.now(UTC).isoformat(), stand_in=True)
    scan = scan_outputs(local_root, None)
    assert [(c.callback_id, c.reason) for c in scan.completions] == [("orphan", "FAILED")]
    assert "never reached Cloud Run" in describe_launch(bundle).log_tail


def test_a_cursor_from_before_the_marker_index_is_migrated(local_root):  # noqa: ANN001
    """Launches in flight when this version is deployed were recorded in the old cursor's pending list."""
    bundle = _launched_bundle(local_root, "inflight", marker=False)
    get_store(bundle).write_bytes(join_uri(bundle, "output.json"), b"{}")
    assert scan_outputs(local_root, None).completions == []  # no marker: invisible without the old cursor
    old = json.dumps({"outputs": {"updated_ns": 1, "uri": ""}, "launches": {"updated_ns": 1, "uri": ""},
                      "pending": [bundle]})
    assert [c.callback_id for c in scan_outputs(local_root, old).completions] == ["inflight"]
