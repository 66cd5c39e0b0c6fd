"""Drive the real sensor and jobs in-process against a real Dagster instance (no daemon needed).

``validibot demo`` and the tests use this: it evaluates ``upload_sensor`` exactly as the daemon would
(cursor kept in the instance's key-value store, dynamic partitions added, run keys deduplicated) and runs
each requested partition with ``execute_in_process``. With ``dagster dev`` running, the daemon does the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions, RunsFilter, build_sensor_context
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG

RUN_KEY_TAG = "dagster/run_key"


@dataclass
class RunOutcome:
    partition_key: str
    source_uri: str
    run_id: str
    success: bool
    outputs: dict[str, Any]  # asset name -> output value (dict), for those that materialized
    checks: dict[str, tuple[bool, str]]  # check name -> (passed, description)


def _cursor_key(sensor_name: str) -> str:
    return f"validibot/local_runner/{sensor_name}/cursor"


def tick(defs: Definitions, instance: DagsterInstance, sensor_name: str = "upload_sensor",
         log_level: str = "DEBUG") -> list[RunOutcome]:
    sensor_def = defs.resolve_sensor_def(sensor_name)
    key = _cursor_key(sensor_name)
    cursor = instance.run_storage.get_cursor_values({key}).get(key)
    with build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources, definitions=defs,
                              sensor_name=sensor_name) as context:
        result = sensor_def(context)
    if result is None or not hasattr(result, "run_requests"):
        return []
    for event in getattr(result, "asset_events", None) or []:
        instance.report_runless_asset_event(event)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    if result.cursor is not None:
        instance.run_storage.set_cursor_values({key: result.cursor})
    outcomes = []
    for request in result.run_requests or []:
        if request.run_key and instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: request.run_key}), limit=1):
            continue  # the daemon skips a run key it has seen: identical upload, nothing to redo
        tags = {**request.tags, RUN_KEY_TAG: request.run_key, "dagster/sensor_name": sensor_name}
        if request.partition_key is None and ASSET_PARTITION_RANGE_START_TAG in request.tags:
            outcomes.extend(run_group(defs, instance, request.job_name, request.run_config, tags, log_level))
            continue
        outcomes.append(run_partition(defs, instance, request.job_name, request.partition_key,
                                      run_config=request.run_config, tags=tags, log_level=log_level,
                                      asset_selection=request.asset_selection))
    return outcomes


def run_group(defs: Definitions, instance: DagsterInstance, job_name: str, run_config: dict | None, tags: dict,
              log_level: str = "DEBUG") -> list[RunOutcome]:
    """A grouped sensor run (a range of new models' partitions) as one run, and one outcome per model."""
    job = defs.resolve_job_def(job_name)
    config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": log_level}}}}
    result = job.execute_in_process(run_config=config, instance=instance, tags=tags, raise_on_error=False)
    uploads = next(iter((run_config or {}).get("ops", {}).values()), {}).get("config", {}).get("uploads", {})
    outcomes = []
    for key, upload in uploads.items():
        outputs = {}
        for node in job.graph.node_names():
            for output_name in ("result", node):
                try:
                    value = result.output_for_node(node, output_name)
                except Exception:  # noqa: BLE001 - the step did not run or produced no output
                    continue
                if isinstance(value, dict) and key in value:
                    outputs[node] = value[key]
                break
        checks = {e.check_name: (e.passed, e.description or "") for e in result.get_asset_check_evaluations()
                  if getattr(e, "partition", None) == key}
        outcomes.append(RunOutcome(partition_key=key, source_uri=upload.get("source_uri", ""), run_id=result.run_id,
                                   success=result.success, outputs=outputs, checks=checks))
    return outcomes


def run_partition(defs: Definitions, instance: DagsterInstance, job_name: str, partition_key: str,
                  run_config: dict | None = None, tags: dict | None = None, log_level: str = "DEBUG",
                  asset_selection: Sequence[AssetKey] | None = None) -> RunOutcome:
    job = defs.resolve_job_def(job_name)
    config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": log_level}}}}
    result = job.execute_in_process(run_config=config, instance=instance, partition_key=partition_key,
                                    tags=tags or {}, raise_on_error=False, asset_selection=asset_selection)
    outputs: dict[str, Any] = {}
    for node in job.graph.node_names():
        for output_name in ("result", node):  # @asset names its output "result"; worker assets after the asset
            try:
                outputs[node] = result.output_for_node(node, output_name)
                break
            except Exception:  # noqa: BLE001 - the step did not run or produced no output
                continue
    checks = {
        evaluation.check_name: (evaluation.passed, evaluation.description or "")
        for evaluation in result.get_asset_check_evaluations()
    }
    return RunOutcome(partition_key=partition_key, source_uri=(tags or {}).get("validibot/source_uri", ""),
                      run_id=result.run_id, success=result.success, outputs=outputs, checks=checks)
