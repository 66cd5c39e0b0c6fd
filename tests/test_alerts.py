"""Alerts through real failing Dagster runs, posted to a real local HTTP server, with rate limiting."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dagster import build_sensor_context

from validibot_pipelines.local_runner import run_partition
from validibot_pipelines.operations import alerts


@pytest.fixture
def webhook(monkeypatch) -> Iterator[list[dict]]:  # noqa: ANN001
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("VALIDIBOT_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_address[1]}/hook")
    monkeypatch.setenv("VALIDIBOT_ALERT_MAX_PER_WINDOW", "2")
    monkeypatch.setenv("VALIDIBOT_ALERT_WINDOW_SECONDS", "3600")
    yield received
    server.shutdown()


def _tick(pipeline, sensor, cursor):  # noqa: ANN001, ANN202
    with build_sensor_context(instance=pipeline.instance, cursor=cursor,
                              repository_def=pipeline.defs.get_repository_def()) as context:
        data = sensor.evaluate_tick(context)
    return data.cursor


def test_failed_runs_and_failed_validations_reach_the_webhook_rate_limited(pipeline, sample_fmus, tmp_path, webhook):  # noqa: ANN001
    run_cursor = _tick(pipeline, alerts.run_failure_alerts, None)  # first ticks start "from now"
    check_cursor = _tick(pipeline, alerts.failed_validation_alerts, None)

    # A failed validation (the model's fault): the spec's assertion fails; and a rejected upload.
    pipeline.drop(sample_fmus["first_order_lag"], spec="assertions:\n  - {name: huge, expr: 'o.y > 100.0'}\n")
    junk = tmp_path / "junk.fmu"
    junk.write_bytes(b"not a zip")
    pipeline.drop(junk)
    outcomes = pipeline.tick()
    assert len(outcomes) == 2
    check_cursor = _tick(pipeline, alerts.failed_validation_alerts, check_cursor)
    assert len(webhook) == 1
    alert = webhook[0]
    assert alert["kind"] == "failed_validation" and alert["text"].startswith("[validibot] ")
    joined = "\n".join(alert["items"])
    assert "fmu_simulation:cel_assertions" in joined and "0/1 assertions passed" in joined
    assert "fmu_intake:intake_accepted" in joined and "junk.fmu" in joined
    assert all(o.partition_key in joined for o in outcomes), (joined, [o.partition_key for o in outcomes])  # noqa: E501
    assert _tick(pipeline, alerts.failed_validation_alerts, check_cursor) == check_cursor  # nothing new, no post
    assert len(webhook) == 1

    # A registered partition whose intake record is missing from the store: that model's intake fails
    # (failed_runtime, naming the fix) and is reported like any failed check; the run stopped at the block.
    pipeline.instance.add_dynamic_partitions("fmu_models", ["lost/never.fmu"])
    missing = run_partition(pipeline.defs, pipeline.instance, "fmi_validation", "lost/never.fmu")
    assert missing.outputs["fmu_intake"]["status"] == "failed_runtime"
    check_cursor = _tick(pipeline, alerts.failed_validation_alerts, check_cursor)
    run_cursor = _tick(pipeline, alerts.run_failure_alerts, run_cursor)  # blocked by its check: no run alert
    assert len(webhook) == 2 and webhook[1]["kind"] == "failed_validation"
    assert "INTAKE_RECORD_MISSING" in "\n".join(webhook[1]["items"])
    assert "model lost/never.fmu" in "\n".join(webhook[1]["items"])  # alerts name the model

    # A failed run (the system's fault): the upload vanished from the landing zone before its run read it.
    def vanished_upload_run():  # noqa: ANN202
        return run_partition(pipeline.defs, pipeline.instance, "fmi_validation", "lost/never.fmu", run_config={
            "ops": {"fmu_intake": {"config": {"source_uri": pipeline.landing_uri + "/gone.fmu"}}}})

    failed = vanished_upload_run()
    assert not failed.success
    # Rate limit (2 per window): the third alert in the window is held back, not posted...
    run_cursor = _tick(pipeline, alerts.run_failure_alerts, run_cursor)
    assert len(webhook) == 2
    state = alerts._load(pipeline.instance)
    assert (state.sent, state.suppressed) == (2, 1)
    # ... and the first post of the next window says so, with the run's own error.
    state.window_start -= 3600
    alerts._save(pipeline.instance, state)
    failed = vanished_upload_run()
    _tick(pipeline, alerts.run_failure_alerts, run_cursor)
    assert len(webhook) == 3 and webhook[2]["held_back"] == 1
    assert "1 alert(s) were held back" in webhook[2]["text"]
    assert webhook[2]["kind"] == "run_failure" and failed.run_id[:8] in webhook[2]["title"]
    assert "gone.fmu" in "\n".join(webhook[2]["items"])


def test_without_a_webhook_alerts_are_only_logged(pipeline, monkeypatch):  # noqa: ANN001
    monkeypatch.delenv("VALIDIBOT_ALERT_WEBHOOK_URL", raising=False)
    logged = []
    assert alerts.send_alert(pipeline.instance, "run_failure", "t", ["x"], log=logged.append) == "no webhook"
    assert logged == ["[validibot] t\n• x"]


def test_a_run_that_fails_before_any_step_is_reported_with_the_runs_own_message(pipeline, webhook):  # noqa: ANN001
    """A run worker that dies before its first step (image pull, OOM at start, lost node) leaves no step
    failure: the alert must carry the run's failure message, as run monitoring reports it."""
    cursor = _tick(pipeline, alerts.run_failure_alerts, None)
    job = pipeline.defs.resolve_job_def("fmi_validation")
    run = pipeline.instance.create_run_for_job(job, tags={"dagster/partition": "hvac/ahu%2Cb.fmu"})
    pipeline.instance.report_run_failed(run, "Run worker exited unexpectedly before starting any step (exit 137)")
    _tick(pipeline, alerts.run_failure_alerts, cursor)
    assert len(webhook) == 1, webhook
    alert = webhook[0]
    assert alert["kind"] == "run_failure" and run.run_id[:8] in alert["title"]
    assert alert["items"][0] == "model hvac/ahu,b.fmu"  # the model's path, decoded from its partition key
    assert "exited unexpectedly before starting any step" in alert["items"][1]
