"""The GCS output sensor: asynchronous launches (Cloud Run Jobs) complete when their output envelope lands.

The Cloud Run backend writes, per launch, ``runs/<run_id>/launch.json`` in the execution bundle and a small
marker ``launches/<run_id>.json`` (the index of launches not yet collected). Each tick lists only
``launches/`` — never ``runs/``, which holds every bundle ever written by any backend and only grows — so the
work per tick follows the number of executions in flight (bounded by ``VALIDIBOT_CLOUDRUN_MAX_IN_FLIGHT``),
not the history. Per tick, in rotating orders (every marker gets its turn):

* up to ``max_checks`` markers: ``output.json`` exists in the bundle → a RunRequest that materializes the
  launching asset (and what is downstream of it) with ``collect_input_uri`` set and ``run_key =
  callback_id`` (at most ``max_per_tick``);
* up to ``max_status_checks`` of those without output: the execution's status is asked; FAILED or CANCELLED
  without output (worker crashed, killed at the task timeout) is collected too, as ``failed_runtime``.

A launch is collected only after the Dagster run that launched it ended (a backfill batch writes its
``launched`` placeholders when its step ends, and must not overwrite a result collected meanwhile). A
collected marker is deleted on the *next* tick, once the cursor that requested its run is committed: if a
tick dies before that, the marker is still there and the same ``run_key`` is requested again, which Dagster
never runs twice — nothing lost, nothing doubled across restarts. An output whose launch record does not
match its envelope (another run id or callback), or whose asset or partition no longer exists, is reported
as an output for an unknown run and retired; outputs in bundles without a marker (synchronous backends) are
never looked at.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from validibot_pipelines.envelopes import load_input_envelope
from validibot_pipelines.envelopes.base import EnvelopeError
from validibot_pipelines.jobs import JOBS_BY_KIND
from validibot_pipelines.orchestration.layout import LAUNCHES_DIR, bundle_uri, launch_marker_uri
from validibot_pipelines.resources.backends.cloudrun import launch_status, read_launch
from validibot_pipelines.resources.backends.cloudrun_api import TERMINAL
from validibot_pipelines.resources.settings import ValidibotSettings
from validibot_pipelines.storage import get_store, join_uri, leaf_name

OUTPUT_FILE = "output.json"
MAX_PER_TICK = 50
MAX_CHECKS = 200
MAX_STATUS_CHECKS = 20
INTERVAL_SECONDS = int(os.environ.get("VALIDIBOT_SENSOR_INTERVAL_SECONDS", "15"))


@dataclass
class OutputCursor:
    after: str = ""  # the last marker given an output check: the next tick starts after it
    status_after: str = ""  # the last marker given a status check (its own rotation: that budget is smaller)
    requested: list[str] = field(default_factory=list)  # markers collected by the last tick: retired now
    legacy_pending: list[str] = field(default_factory=list)  # bundles a pre-marker cursor was waiting for

    def dumps(self) -> str:
        return json.dumps({"after": self.after, "status_after": self.status_after, "requested": self.requested})

    @classmethod
    def loads(cls, raw: str | None) -> OutputCursor:
        data = json.loads(raw) if raw else {}
        # A cursor from before the marker index listed its uncollected launches as bundle URIs ("pending").
        return cls(data.get("after", ""), data.get("status_after", ""), list(data.get("requested", [])),
                   list(data.get("pending", [])))


def _rotated(items: list[Any], after: str, name: Callable[[Any], str] = str) -> list[Any]:
    """``items`` (sorted by ``name``) starting after ``after`` and wrapping around: every item gets its turn."""
    return [i for i in items if name(i) > after] + [i for i in items if name(i) <= after]


@dataclass(frozen=True)
class Completion:
    """One launch to collect: which Dagster asset/partition resumes, and why (output or job status)."""

    callback_id: str
    input_uri: str
    asset: str
    partition: str
    reason: str  # "output" or the terminal job status


@dataclass
class OutputScan:
    completions: list[Completion]
    ignored: list[str]  # outputs for unknown runs, with the reason
    cursor: str


def _completion(bundle: str, launch: dict[str, Any] | None, reason: str, ignored: list[str]) -> Completion | None:
    """Match an output (or a terminal execution) to its launch record; None (+ a reason) when it is unknown."""
    if launch is None:
        ignored.append(f"{bundle}: output for an unknown run (no launch.json in the bundle)")
        return None
    input_uri = join_uri(bundle, "input.json")
    try:
        envelope = load_input_envelope(get_store(input_uri).read_bytes(input_uri), where=input_uri)
    except (FileNotFoundError, EnvelopeError) as exc:
        ignored.append(f"{bundle}: output for an unknown run (input envelope unreadable: {exc})")
        return None
    if envelope.context.callback_id != launch.get("callback_id") or envelope.run_id != launch.get("run_id"):
        ignored.append(f"{bundle}: output for an unknown run (launch.json is for callback "
                       f"{launch.get('callback_id')!r}, the envelope for {envelope.context.callback_id!r})")
        return None
    if not (launch.get("asset") and launch.get("partition")):
        ignored.append(f"{bundle}: output for an unknown run (launched outside Dagster: no asset to materialize)")
        return None
    return Completion(callback_id=envelope.context.callback_id, input_uri=input_uri, asset=launch["asset"],
                      partition=launch["partition"], reason=reason)


def scan_outputs(store_uri: str, cursor: str | None, *, max_per_tick: int = MAX_PER_TICK,
                 max_checks: int = MAX_CHECKS, max_status_checks: int = MAX_STATUS_CHECKS,
                 status_of: Callable[[dict[str, Any]], str] = lambda launch: launch_status(launch)[0],
                 launcher_finished: Callable[[str], bool] = lambda _run_id: True) -> OutputScan:
    """Plain logic behind the sensor (no Dagster objects), so restarts and limits are easy to test.

    ``launcher_finished(dagster_run_id)``: a launch is collected only once the run that launched it ended. A
    backfill batch materializes every model it launched as ``launched`` when its step ends; collecting an
    early model before that would let the placeholder overwrite the collected result.
    """
    state = OutputCursor.loads(cursor)
    launches = join_uri(store_uri, LAUNCHES_DIR)
    store = get_store(launches)
    for bundle in state.legacy_pending:  # migrate: index what the old cursor was still waiting for
        marker = launch_marker_uri(bundle)
        if read_launch(bundle) is not None and not store.exists(marker):
            store.write_bytes(marker, json.dumps({"bundle": bundle}).encode(), "application/json")
    for marker in state.requested:  # their runs were requested by a tick whose cursor is now committed
        store.delete(marker)
    retired = set(state.requested)
    markers = sorted(o.uri for o in store.list(launches) if o.uri.endswith(".json") and o.uri not in retired)
    completions: list[Completion] = []
    ignored: list[str] = []
    requested: list[str] = []
    after = state.after
    without_output: list[tuple[str, str]] = []

    def settle(marker: str, bundle: str, launch: dict[str, Any] | None, reason: str) -> None:
        """Collect (or report as unknown) and retire the marker — unless its launching run is still going."""
        if launch and launch.get("dagster_run_id") and not launcher_finished(launch["dagster_run_id"]):
            return  # looked at again on a later tick
        done = _completion(bundle, launch, reason, ignored)
        if done is not None:
            completions.append(done)
        requested.append(marker)

    for marker in _rotated(markers, state.after)[:max_checks]:
        if len(completions) >= max_per_tick:
            break
        after = marker
        bundle = bundle_uri(store_uri, leaf_name(marker).removesuffix(".json"))
        output = join_uri(bundle, OUTPUT_FILE)
        if get_store(output).exists(output):
            settle(marker, bundle, read_launch(bundle), "output")
        else:
            without_output.append((marker, bundle))
    status_after = state.status_after
    for marker, bundle in _rotated(without_output, state.status_after, lambda pair: pair[0])[:max_status_checks]:
        if len(completions) >= max_per_tick:
            break
        status_after = marker
        launch = read_launch(bundle)
        if launch is None:
            settle(marker, bundle, None, "missing")  # reported as unknown
            continue
        status = status_of(launch)
        if status in TERMINAL:
            output = join_uri(bundle, OUTPUT_FILE)  # it may have landed between the two looks
            settle(marker, bundle, launch, "output" if get_store(output).exists(output) else status)
    return OutputScan(completions=completions, ignored=ignored, cursor=OutputCursor(
        after=after, status_after=status_after, requested=requested).dumps())


def _target(context: SensorEvaluationContext, asset: str, partition: str) -> tuple[str, list[AssetKey]]:
    """The validator's job (by the asset's group, whichever run launched it: a sensor run, a UI launch or a
    backfill's implicit asset job) and the collected asset with everything downstream of it in its group.

    ``LookupError`` when the launch no longer fits the code: the asset was renamed or removed since, its group
    has no validation job, or the model's partition was deleted.
    """
    from dagster import DynamicPartitionsDefinition

    graph = context.repository_def.asset_graph
    key = AssetKey.from_user_string(asset)
    if not graph.has(key):
        raise LookupError(f"asset {asset} is not defined any more")
    node = graph.get(key)
    if node.group_name not in JOBS_BY_KIND:
        raise LookupError(f"asset {asset} is in group {node.group_name!r}, which has no validation job")
    partitions = node.partitions_def
    if isinstance(partitions, DynamicPartitionsDefinition) and not context.instance.has_dynamic_partition(
            partitions.name, partition):
        raise LookupError(f"partition {partition} of {partitions.name} was deleted")
    keys = (AssetSelection.assets(key).downstream() & AssetSelection.groups(node.group_name)).resolve(graph)
    return JOBS_BY_KIND[node.group_name].name, sorted(keys, key=lambda k: k.to_user_string())


@sensor(
    name="output_sensor", jobs=list(JOBS_BY_KIND.values()), minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Collects asynchronous worker launches (Cloud Run Jobs): output envelopes in the bundles of "
                "launches/ markers → materialize the launching asset (run key = callback id).",
)
def output_sensor(context: SensorEvaluationContext, settings: ValidibotSettings):
    def launcher_finished(run_id: str) -> bool:
        run = context.instance.get_run_by_id(run_id)
        return run is None or run.is_finished

    scan = scan_outputs(settings.store_uri, context.cursor, max_per_tick=MAX_PER_TICK,
                        launcher_finished=launcher_finished)
    for reason in scan.ignored:
        context.log.warning(reason)
    requests = []
    for done in scan.completions:
        try:  # one launch the code can no longer place must not stop every other collection
            job, selection = _target(context, done.asset, done.partition)
        except LookupError as exc:
            context.log.warning(f"{done.input_uri}: output for an unknown run ({exc}); not collected")
            continue
        requests.append(RunRequest(
            run_key=done.callback_id, job_name=job, partition_key=done.partition, asset_selection=selection,
            run_config={"ops": {done.asset: {"config": {"collect_input_uri": done.input_uri}}}},
            tags={"validibot/callback_id": done.callback_id, "validibot/collect_reason": done.reason},
        ))
    if not requests:
        return SensorResult(skip_reason=SkipReason("no new worker outputs"), cursor=scan.cursor)
    return SensorResult(run_requests=requests, cursor=scan.cursor)
