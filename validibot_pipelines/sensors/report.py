"""``report_sensor``: refresh ``validation_report`` after validation runs recorded new results.

A sensor with a cursor rather than declarative automation: the report depends on every partition of every
validator asset (10,000 models and more), and "anything new since the last refresh?" is one newest-event
look-up per validator asset — the cursor is the newest materialization id the last request covered. Bursts
coalesce: while a report run is queued or running no new one is requested, and the next tick covers everything
recorded meanwhile (the report itself reads only the events since its last build, ``assets/report.py``).
"""

from __future__ import annotations

import os

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from validibot_pipelines.assets.report import REPORT_ASSET, newest_result_id

report_job = define_asset_job("validation_report_job", selection=AssetSelection.assets(REPORT_ASSET),
                              description="Refresh the cross-model validation report")
INTERVAL_SECONDS = int(os.environ.get("VALIDIBOT_REPORT_INTERVAL_SECONDS", "30"))
_ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


@sensor(name="report_sensor", job=report_job, minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Refreshes validation_report when validation runs recorded new results.")
def report_sensor(context: SensorEvaluationContext):  # noqa: ANN201
    covered = int(context.cursor or -1)
    newest = newest_result_id(context.instance)
    if newest <= covered:
        return SkipReason("no new validation results since the last report")
    if context.instance.get_runs(RunsFilter(job_name=report_job.name, statuses=_ACTIVE), limit=1):
        return SkipReason("a report run is in progress; the next tick covers what it misses")
    context.update_cursor(str(newest))
    return RunRequest(run_key=f"report-{newest}")
