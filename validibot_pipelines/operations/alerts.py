"""Alerts where a user looks: a webhook (Slack-compatible ``{"text": ...}`` JSON) for failed runs (the
system's fault: a crashed step, a lost store, a broken backend) and for failed validations (a failed asset
check: intake rejected, simulation failed, CEL assertions failed — the model's fault).

``VALIDIBOT_ALERT_WEBHOOK_URL`` unset = alerts are only logged. Rate limiting: at most
``VALIDIBOT_ALERT_MAX_PER_WINDOW`` posts (default 10) per ``VALIDIBOT_ALERT_WINDOW_SECONDS`` (default 3600);
alerts beyond that are counted, not posted, and the next post after the window says how many were held back.
The limiter's state lives in the Dagster instance's key-value store, shared by both sensors and by every
daemon restart.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from dagster import (
    AssetCheckKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from validibot_pipelines.orchestration.names import model_path

STATE_KEY = "validibot/alerts/rate_limit"
MAX_ITEMS_PER_POST = 20
CHECK_FAILED = "DagsterAssetCheckFailedError"
FINISHED = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]


@dataclass
class LimiterState:
    window_start: float = 0.0
    sent: int = 0
    suppressed: int = 0


def _settings() -> tuple[str, int, float]:
    return (os.environ.get("VALIDIBOT_ALERT_WEBHOOK_URL", ""),
            int(os.environ.get("VALIDIBOT_ALERT_MAX_PER_WINDOW", "10")),
            float(os.environ.get("VALIDIBOT_ALERT_WINDOW_SECONDS", "3600")))


def _load(instance: DagsterInstance) -> LimiterState:
    raw = instance.run_storage.get_cursor_values({STATE_KEY}).get(STATE_KEY)
    return LimiterState(**json.loads(raw)) if raw else LimiterState()


def _save(instance: DagsterInstance, state: LimiterState) -> None:
    instance.run_storage.set_cursor_values({STATE_KEY: json.dumps(asdict(state))})


def send_alert(instance: DagsterInstance, kind: str, title: str, items: list[str], log=None) -> str:  # noqa: ANN001
    """Post one alert (rate limited). Returns ``posted``, ``suppressed`` or ``no webhook``."""
    url, max_per_window, window = _settings()
    text = f"[validibot] {title}\n" + "\n".join(f"• {i}" for i in items[:MAX_ITEMS_PER_POST])
    if len(items) > MAX_ITEMS_PER_POST:
        text += f"\n… and {len(items) - MAX_ITEMS_PER_POST} more"
    if log:
        log(text)
    if not url:
        return "no webhook"
    state, now = _load(instance), time.time()
    if now - state.window_start >= window:
        held_back = state.suppressed
        state = LimiterState(window_start=now)
        if held_back:
            text += f"\n({held_back} alert(s) were held back by the rate limit in the previous window)"
    else:
        held_back = 0
    if state.sent >= max_per_window:
        state.suppressed += 1
        _save(instance, state)
        return "suppressed"
    body = json.dumps({"text": text, "kind": kind, "title": title, "items": items,
                       "held_back": held_back}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
    state.sent += 1
    _save(instance, state)
    return "posted"


@run_failure_sensor(name="run_failure_alerts", default_status=DefaultSensorStatus.RUNNING,
                    description="Posts failed runs (the system's fault) to VALIDIBOT_ALERT_WEBHOOK_URL, rate limited.")
def run_failure_alerts(context: RunFailureSensorContext) -> None:
    run = context.dagster_run
    steps = _step_failures(context.instance, run.run_id)
    if steps and all(cls == CHECK_FAILED for _, cls, _ in steps):
        # Only blocking checks stopped it: a failed validation, reported by failed_validation_alerts.
        context.log.info(f"run {run.run_id[:8]}: stopped by blocking checks only; not a runtime failure")
        return
    start = run.tags.get("dagster/asset_partition_range_start")
    partition = _model(run.tags.get("dagster/partition")) if run.tags.get("dagster/partition") else (
        f"{_model(start)} … {_model(run.tags.get('dagster/asset_partition_range_end', ''))}" if start else "-")
    failed_steps = [f"step {step}: {message}"[:500] for step, cls, message in steps if cls != CHECK_FAILED]
    # A run that failed before any step (launch, resources) has no step failures: report the run's own message.
    items = [f"model {partition}", *(failed_steps or [context.failure_event.message or "run failed"])]
    send_alert(context.instance, "run_failure", f"run {run.run_id[:8]} of {run.job_name} failed", items,
               log=context.log.warning)


def _step_failures(instance: DagsterInstance, run_id: str) -> list[tuple[str, str, str]]:
    """(step key, error class, message) of each failed step of a run."""
    out = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = entry.dagster_event.event_specific_data
        failure = getattr(data, "user_failure_data", None)
        error = root = data.error
        # User code errors come wrapped in Dagster's step error: report the first error that is not Dagster's
        # own wrapper (not the deepest cause, which may be a library detail under a clearer message).
        while root is not None and root.cls_name.startswith("Dagster") and root.cause is not None:
            root = root.cause
        message = (failure.description if failure and failure.description else None) or (
            root.message.strip() if root else "failed")
        out.append((entry.dagster_event.step_key or "?", error.cls_name if error else "", message))
    return out


@sensor(name="failed_validation_alerts", minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Posts failed asset checks (failed validations) to VALIDIBOT_ALERT_WEBHOOK_URL, "
                    "one summary per tick, rate limited.")
def failed_validation_alerts(context: SensorEvaluationContext):  # noqa: ANN201
    # Cursor: the update time of the last finished run handled. Finished runs are read run by run (the
    # default SQLite event log is sharded per run, so a global event cursor does not work there).
    instance = context.instance
    if context.cursor is None:  # first tick: start from now, do not replay history
        context.update_cursor(str(time.time()))
        return SkipReason("alerts start from now")
    after = datetime.fromtimestamp(float(context.cursor), tz=UTC)
    runs = instance.get_run_records(RunsFilter(updated_after=after, statuses=FINISHED), limit=200, ascending=True)
    if not runs:
        return SkipReason("no finished runs since the last tick")
    failures = []
    for run in runs:
        for entry in instance.all_logs(run.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            if not evaluation.passed:
                # a one-partition run says it in its tags; a batch run's checks say it through their target
                partition = (evaluation.partition or run.dagster_run.tags.get("dagster/partition")
                             or _target_partition(instance, evaluation))
                failures.append(f"{_check_label(evaluation.asset_check_key)} model {_model(partition)}: "
                                f"{evaluation.description or 'failed'}"[:400])
    context.update_cursor(str(max(r.update_timestamp.timestamp() for r in runs)))
    if not failures:
        return SkipReason(f"{len(runs)} finished run(s), no failed checks")
    outcome = send_alert(instance, "failed_validation", f"{len(failures)} failed validation check(s)", failures,
                         log=context.log.warning)
    return SkipReason(f"{len(failures)} failed check(s): alert {outcome}")


def _model(key: str | None) -> str:
    """A partition as the model's path (bounded: an alert line stays short)."""
    if not key:
        return "-"
    name = model_path(key)
    return name if len(name) <= 120 else f"{name[:50]}…{name[-60:]}"


def _check_label(key: AssetCheckKey) -> str:
    return f"{key.asset_key.to_user_string()}:{key.name}"


def _target_partition(instance: DagsterInstance, evaluation) -> str | None:  # noqa: ANN001
    target = evaluation.target_materialization_data
    if target is None:
        return None
    records = instance.fetch_materializations(AssetRecordsFilter(
        asset_key=evaluation.asset_key, storage_ids=[target.storage_id]), limit=1).records
    return records[0].partition_key if records else None
