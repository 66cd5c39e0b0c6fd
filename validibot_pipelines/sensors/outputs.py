"""The GCS output sensor: asynchronous launches (Cloud Run Jobs) complete when their output envelope lands.

Each tick lists the execution bundles (``<store>/runs/``, metadata only) and, beyond a persisted cursor:

* new ``launch.json`` files → the launch joins the cursor's *pending* set;
* new ``output.json`` files (at most ``max_per_tick``, oldest first) in bundles with a ``launch.json`` →
  a RunRequest that materializes the launching asset (and what is downstream of it) with
  ``collect_input_uri`` set, ``run_key = callback_id``: a duplicated or re-written output requests the same
  key again, which Dagster never runs twice;
* up to ``max_status_checks`` pending launches without output are asked for their job status; a FAILED or
  CANCELLED execution (worker crashed, killed at the task timeout) is collected too, and becomes
  ``failed_runtime`` saying so.

Outputs in bundles without ``launch.json`` come from synchronous backends and are not this sensor's business;
an output whose launch record does not match its envelopes (another run id or callback) is reported as an
output for an unknown run and ignored. The cursor moves only past what was handled, so a restarted sensor
(daemon restart, code reload) resumes where it stopped: nothing lost, nothing doubled.
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
from validibot_pipelines.resources.backends.cloudrun import LAUNCH_FILE, launch_status, read_launch
from validibot_pipelines.resources.backends.cloudrun_api import TERMINAL
from validibot_pipelines.resources.settings import ValidibotSettings
from validibot_pipelines.sensors.landing import Mark
from validibot_pipelines.storage import get_store, join_uri, leaf_name

OUTPUT_FILE = "output.json"
MAX_PER_TICK = 50
MAX_STATUS_CHECKS = 20
MAX_PENDING = 10_000
INTERVAL_SECONDS = int(os.environ.get("VALIDIBOT_SENSOR_INTERVAL_SECONDS", "15"))


@dataclass
class OutputCursor:
    outputs: Mark = field(default_factory=lambda: Mark(-1, ""))
    launches: Mark = field(default_factory=lambda: Mark(-1, ""))
    pending: list[str] = field(default_factory=list)  # bundle URIs launched but not yet collected

    def dumps(self) -> str:
        return json.dumps({"outputs": json.loads(self.outputs.dumps()), "launches": json.loads(self.launches.dumps()),
                           "pending": self.pending})

    @classmethod
    def loads(cls, raw: str | None) -> OutputCursor:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(Mark.loads(json.dumps(data["outputs"])), Mark.loads(json.dumps(data["launches"])),
                   list(data.get("pending", [])))


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


def _bundle(uri: str) -> str:
    return uri.rsplit("/", 1)[0]


def _completion(bundle: str, reason: str, ignored: list[str]) -> Completion | None:
    """Match an output (or a terminal execution) to its launch record; None (+ a reason) when it is unknown."""
    launch = read_launch(bundle)
    if launch is None:
        return None  # a synchronous backend's bundle
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
                 max_status_checks: int = MAX_STATUS_CHECKS,
                 status_of: Callable[[dict[str, Any]], str] = lambda launch: launch_status(launch)[0]) -> OutputScan:
    """Plain logic behind the sensor (no Dagster objects), so restarts and limits are easy to test."""
    state = OutputCursor.loads(cursor)
    runs = join_uri(store_uri, "runs")
    store = get_store(runs)
    objects = sorted(store.list(runs), key=lambda o: (o.updated_ns, o.uri))
    pending = list(dict.fromkeys(state.pending))
    for obj in objects:
        if leaf_name(obj.uri) == LAUNCH_FILE and (obj.updated_ns, obj.uri) > (state.launches.updated_ns,
                                                                            state.launches.uri):
            pending.append(_bundle(obj.uri))
            state.launches = Mark(obj.updated_ns, obj.uri)
    pending = list(dict.fromkeys(pending))
    completions: list[Completion] = []
    ignored: list[str] = []
    fresh = [o for o in objects if leaf_name(o.uri) == OUTPUT_FILE
             and (o.updated_ns, o.uri) > (state.outputs.updated_ns, state.outputs.uri)]
    for obj in fresh[:max_per_tick]:
        bundle = _bundle(obj.uri)
        done = _completion(bundle, "output", ignored)
        if done is not None:
            completions.append(done)
        if bundle in pending:
            pending.remove(bundle)
        state.outputs = Mark(obj.updated_ns, obj.uri)
    collected = {c.input_uri for c in completions}
    outputs_by_bundle = {_bundle(o.uri): o for o in objects if leaf_name(o.uri) == OUTPUT_FILE}
    for bundle in list(pending[:max_status_checks]):
        launch = read_launch(bundle)
        if launch is None:
            pending.remove(bundle)
            continue
        status = status_of(launch)
        pending.remove(bundle)
        if status not in TERMINAL:
            pending.append(bundle)  # to the back: the next tick checks the next ones (no starvation)
            continue
        if join_uri(bundle, "input.json") in collected:
            continue
        output = outputs_by_bundle.get(bundle)
        if output is not None and (output.updated_ns, output.uri) > (state.outputs.updated_ns, state.outputs.uri):
            pending.append(bundle)  # its output comes through the output path on a later tick
            continue
        # No output (crash, task timeout), or one the output mark passed without collecting it: collect now.
        done = _completion(bundle, "output" if output is not None else status, ignored)
        if done is not None:
            completions.append(done)
    state.pending = pending[-MAX_PENDING:]
    return OutputScan(completions=completions, ignored=ignored, cursor=state.dumps())


def _target(context: SensorEvaluationContext, asset: str) -> tuple[str, list[AssetKey]]:
    """The validator's job (by the asset's group, whichever run launched it: a sensor run, a UI launch or a
    backfill's implicit asset job) and the collected asset with everything downstream of it in its group."""
    graph = context.repository_def.asset_graph
    key = AssetKey.from_user_string(asset)
    group = graph.get(key).group_name
    keys = (AssetSelection.assets(key).downstream() & AssetSelection.groups(group)).resolve(graph)
    return JOBS_BY_KIND[group].name, sorted(keys, key=lambda k: k.to_user_string())


@sensor(
    name="output_sensor", jobs=list(JOBS_BY_KIND.values()), minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Collects asynchronous worker launches (Cloud Run Jobs): output envelopes in execution bundles "
                "→ materialize the launching asset (run key = callback id).",
)
def output_sensor(context: SensorEvaluationContext, settings: ValidibotSettings):
    scan = scan_outputs(settings.store_uri, context.cursor, max_per_tick=MAX_PER_TICK)
    for reason in scan.ignored:
        context.log.warning(reason)
    requests = []
    for done in scan.completions:
        job, selection = _target(context, done.asset)
        requests.append(RunRequest(
            run_key=done.callback_id, job_name=job, partition_key=done.partition, asset_selection=selection,
            run_config={"ops": {done.asset: {"config": {"collect_input_uri": done.input_uri}}}},
            tags={"validibot/callback_id": done.callback_id, "validibot/collect_reason": done.reason},
        ))
    if not requests:
        return SensorResult(skip_reason=SkipReason("no new worker outputs"), cursor=scan.cursor)
    return SensorResult(run_requests=requests, cursor=scan.cursor)
