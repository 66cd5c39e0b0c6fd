"""The container contract the worker honours for every backend (here through the local subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from validibot_pipelines.envelopes import InputFileItem, load_output_envelope
from validibot_pipelines.intake.common import sha256_file
from validibot_pipelines.orchestration.launch import launch_step
from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.validators.fmi.launch import PROBE_VALIDATOR, SIMULATION_VALIDATOR


def _item(path, role="fmu"):  # noqa: ANN001, ANN202
    sha, size = sha256_file(path)
    return InputFileItem(name=path.name, mime_type="application/vnd.fmi.fmu", role=role, uri=path.as_uri(),
                         size_bytes=size, sha256=sha)


def _launch(store_root, fmu, run_id, validator=SIMULATION_VALIDATOR, inputs=None):  # noqa: ANN001, ANN202
    return launch_step(store_uri=store_root, run_id=run_id, validator=validator, files=[_item(fmu)],
                       inputs=inputs or {}, backend=LocalSubprocessBackend(), timeout_seconds=60)


def test_probe_reports_catalog_and_counts(local_root, sample_fmus):  # noqa: ANN001
    out, record = _launch(local_root, sample_fmus["multi_output"], "p1", PROBE_VALIDATOR)
    assert out.status == "success" and record.returncode == 0 and record.backend == "local"
    assert out.outputs["counts"] == {"variables": 6, "inputs": 0, "outputs": 4, "parameters": 2,
                                     "structural_parameters": 0, "arrays": 0}
    types = {v["name"]: v["value_type"] for v in out.outputs["variables"]}
    assert types == {"slope": "Real", "omega": "Real", "ramp": "Real", "wave": "Real", "steps": "Integer",
                     "positive": "Boolean"}
    assert out.outputs["default_experiment"]["stop_time"] == 2.0
    assert out.input_envelope_sha256


def test_envelopes_and_artifacts_land_in_the_bundle_on_gcs(gcs_bucket, sample_fmus):  # noqa: ANN001
    out, _ = _launch(gcs_bucket, sample_fmus["first_order_lag"], "gcs1", inputs={"input_values": {"u": 2.0}})
    assert out.status == "success"
    assert abs(out.outputs["output_values"]["y"] - 4 * (1 - 2.718281828459045 ** -6)) < 1e-9
    bundle = join_uri(gcs_bucket, "runs", "gcs1")
    names = sorted(o.uri.removeprefix(bundle + "/") for o in get_store(bundle).list(bundle))
    assert names == ["artifacts/timeseries.parquet", "input.json", "output.json"]


def test_s3_store_works_for_the_worker(s3_bucket, sample_fmus):  # noqa: ANN001
    out, _ = _launch(s3_bucket, sample_fmus["multi_output"], "s3run")
    assert out.status == "success" and out.outputs["output_values"]["steps"] == 200


def test_replay_does_not_recompute(local_root, sample_fmus):  # noqa: ANN001
    out, _ = _launch(local_root, sample_fmus["first_order_lag"], "r1")
    input_uri = join_uri(local_root, "runs", "r1", "input.json")
    env = {**os.environ, "VALIDIBOT_INPUT_URI": input_uri}
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.runtime"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    assert "replay" in proc.stderr
    again = load_output_envelope(get_store(input_uri).read_bytes(join_uri(local_root, "runs", "r1", "output.json")))
    assert again.timing.started_at == out.timing.started_at  # the stored result, not a new computation


def test_output_uri_must_match_and_bad_envelopes_exit_nonzero(local_root, sample_fmus, tmp_path):  # noqa: ANN001
    _launch(local_root, sample_fmus["first_order_lag"], "o1")
    input_uri = join_uri(local_root, "runs", "o1", "input.json")
    base = [sys.executable, "-m", "validibot_pipelines.runtime"]
    env = {**os.environ, "VALIDIBOT_INPUT_URI": input_uri, "VALIDIBOT_OUTPUT_URI": "file:///elsewhere/out.json"}
    proc = subprocess.run(base, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "differs from the envelope's expected_output_uri" in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"run_id": "x"}))
    proc = subprocess.run(base, env={**os.environ, "VALIDIBOT_INPUT_URI": bad.as_uri()}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "invalid InputEnvelope" in proc.stderr and "validator" in proc.stderr


def test_checksum_mismatch_is_failed_runtime(local_root, sample_fmus, tmp_path):  # noqa: ANN001
    fmu = tmp_path / "m.fmu"
    fmu.write_bytes(sample_fmus["first_order_lag"].read_bytes())
    item = _item(fmu)
    fmu.write_bytes(sample_fmus["multi_output"].read_bytes())  # the bytes change after the envelope was written
    out, _ = launch_step(store_uri=local_root, run_id="c1", validator=SIMULATION_VALIDATOR, files=[item], inputs={},
                         backend=LocalSubprocessBackend(), timeout_seconds=60)
    assert out.status == "failed_runtime" and "checksum mismatch" in out.messages[0].text


def test_worker_killed_without_output_is_failed_runtime(local_root, sample_fmus):  # noqa: ANN001
    out, record = launch_step(store_uri=local_root, run_id="k1", validator=SIMULATION_VALIDATOR,
                              files=[_item(sample_fmus["hang"])], inputs={"simulation_timeout_seconds": 30},
                              backend=LocalSubprocessBackend(grace_seconds=1), timeout_seconds=2)
    assert record.timed_out
    assert out.status == "failed_runtime" and out.messages[0].code == "WORKER_NO_OUTPUT"
    assert "timed out" in out.messages[0].text


def test_stopping_the_worker_leaves_no_fmu_process_behind(local_root, sample_fmus):  # noqa: ANN001
    from tests.processes import assert_none_left, stop_while_a_child_runs

    child = "validibot_pipelines.validators.fmi.worker.child"
    out, record = stop_while_a_child_runs(lambda timeout: launch_step(
        store_uri=local_root, run_id=f"k2-{timeout:g}", validator=SIMULATION_VALIDATOR,
        files=[_item(sample_fmus["hang"])], inputs={"simulation_timeout_seconds": 120},
        backend=LocalSubprocessBackend(grace_seconds=1), timeout_seconds=timeout), child, timeouts=(3, 10, 30))
    assert record.timed_out and out.status == "failed_runtime"
    assert_none_left(child, within=5)


def test_input_time_series_drives_the_fmu_inputs(local_root, sample_fmus, tmp_path):  # noqa: ANN001
    """The envelope's optional input time series (design: FMI simulation inputs) reaches fmpy: u steps 0 → 3
    at t = 1 s, so the first-order lag (k = 2, T = 0.5 s) ends at 6·(1 − e^(−2/0.5)) instead of 6·(1 − e^(−6))."""
    import math

    csv = tmp_path / "u.csv"
    csv.write_text("time,u\n0,0\n1,0\n1,3\n3,3\n")
    uri = join_uri(local_root, "inputs", "u.csv")
    get_store(uri).upload_file(csv, uri)
    inputs = {"simulation": {"start_time": 0, "stop_time": 3, "step_size": 0.01}, "input_timeseries_uri": uri}
    out, _ = _launch(local_root, sample_fmus["first_order_lag"], "ts1", inputs=inputs)
    assert out.status == "success", out.messages
    y = out.outputs["output_values"]["y"]
    assert abs(y - 6 * (1 - math.exp(-4))) < 0.05 and abs(y - 6 * (1 - math.exp(-6))) > 0.05


def test_a_retried_step_replays_instead_of_recomputing(local_root, sample_fmus):  # noqa: ANN001
    """The same step launched again in its run (same run id, files and inputs — a Dagster step retry) keeps
    the bundle's envelope bytes (only queued_at would differ), so the worker replays the existing output."""
    from validibot_pipelines.orchestration.layout import bundle_uri

    input_uri = join_uri(bundle_uri(local_root, "retry1"), "input.json")
    first, _ = _launch(local_root, sample_fmus["first_order_lag"], "retry1")
    written = get_store(input_uri).read_bytes(input_uri)
    again, record = _launch(local_root, sample_fmus["first_order_lag"], "retry1")
    assert get_store(input_uri).read_bytes(input_uri) == written
    assert "replay:" in record.log_tail and again.outputs == first.outputs
    # Different inputs under the same run id are a different request: the envelope is rewritten, recomputed.
    changed, record = _launch(local_root, sample_fmus["first_order_lag"], "retry1",
                              inputs={"simulation": {"stop_time": 2}})
    assert get_store(input_uri).read_bytes(input_uri) != written and "replay:" not in record.log_tail
