"""The upload sensor: new files in the landing zone → dynamic partitions (one per model, by name) → runs.

A partition is a model: its path below the landing root (``orchestration/names.py``). Each run validates one
*version* of it (its bytes' SHA-256 and its spec's), recorded before the run starts as the observation of the
model's ``<kind>_spec`` (data version = the spec's checksum, metadata ``model_sha256`` = the model's). A new
version at a known name runs the same partition again; a re-upload of the version already registered (same bytes,
same spec) is skipped here — one look-up per upload, never a walk over the registered models.

Entries that cannot be taken in (symlinks, FIFOs, unreadable files, unknown types) come back from the scan as
``skipped`` reasons and are logged as warnings, once each; they never fail the tick, so one bad entry cannot stop
every later upload from being processed.
"""

import hashlib
import os

from dagster import (
    AssetKey,
    AssetObservation,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from validibot_pipelines.assets.specs import spec_asset_name
from validibot_pipelines.jobs import INTAKE_ASSET_BY_KIND, JOBS_BY_KIND
from validibot_pipelines.orchestration.names import model_path
from validibot_pipelines.orchestration.revalidate import spec_version
from validibot_pipelines.partitions import PARTITIONS_BY_KIND
from validibot_pipelines.resources.settings import ValidibotSettings
from validibot_pipelines.sensors.landing import Upload, scan

MAX_NEW_PER_TICK = 50
# How often the daemon evaluates the sensor. A tick is one listing of the landing zone (one list request on a
# bucket: ~43,000 a day at 2 s), and a drop waits for the next one: at 5 s, drop-to-verdict with `dagster dev`
# reached 10-14.5 s in some drops (bench_latency.py), at 2 s at most 8.6 s.
INTERVAL_SECONDS = int(os.environ.get("VALIDIBOT_SENSOR_INTERVAL_SECONDS", "2"))


MODEL_SHA_KEY = "model_sha256"


def intake_run_config(kind: str, source_uri: str, spec_uri: str | None, sha256: str = "") -> dict:
    """The run config that points a validator's job at one upload (and its spec)."""
    return {"ops": {INTAKE_ASSET_BY_KIND[kind]: {"config": {"source_uri": source_uri, "spec_uri": spec_uri or "",
                                                             "sha256": sha256}}}}


def grouped_run_config(kind: str, uploads: list[Upload]) -> dict:
    """The run config of a grouped run: each upload by its partition (``IntakeConfig.uploads``)."""
    return {"ops": {INTAKE_ASSET_BY_KIND[kind]: {"config": {"uploads": {
        u.key: {"source_uri": u.uri, "spec_uri": u.spec_uri or "", "sha256": u.sha256} for u in uploads}}}}}


def batch_size() -> int:
    """``VALIDIBOT_SENSOR_BATCH_SIZE``: most new models one sensor run validates (1: a run per upload)."""
    try:
        return max(1, int(os.environ.get("VALIDIBOT_SENSOR_BATCH_SIZE", "25")))
    except ValueError:
        return 25


def run_requests(kind: str, uploads: list[Upload], new: set[str], size: int) -> list[RunRequest]:
    """The runs for one validator's uploads of a tick: new models (partitions added in this order, so each
    group is a contiguous range of them) in groups of up to ``size``; a new version of a known model alone."""
    job = JOBS_BY_KIND[kind].name
    groups = [[u] for u in uploads if u.key not in new]
    fresh = [u for u in uploads if u.key in new]
    groups += [fresh[i:i + size] for i in range(0, len(fresh), size)]
    requests = []
    for group in groups:
        if len(group) == 1:
            u = group[0]
            requests.append(RunRequest(run_key=u.run_key, job_name=job, partition_key=u.key,
                                       run_config=intake_run_config(kind, u.uri, u.spec_uri, u.sha256),
                                       tags={"validibot/source_uri": u.uri, "validibot/kind": kind}))
            continue
        run_key = hashlib.sha256("\n".join(u.run_key for u in group).encode()).hexdigest()
        requests.append(RunRequest(
            run_key=f"{kind}:group:{run_key}", job_name=job, run_config=grouped_run_config(kind, group),
            tags={ASSET_PARTITION_RANGE_START_TAG: group[0].key, ASSET_PARTITION_RANGE_END_TAG: group[-1].key,
                  "validibot/kind": kind, "validibot/models": str(len(group))}))
    return requests


def version_observation(kind: str, key: str, spec_sha256: str | None, model_sha256: str) -> AssetObservation:
    """The registered version of a model: its spec's data version, tagged with the model's checksum."""
    return AssetObservation(asset_key=spec_asset_name(kind), partition=key,
                            tags={DATA_VERSION_TAG: spec_version(spec_sha256)},  # tag values stop at 63 chars
                            metadata={MODEL_SHA_KEY: model_sha256})


def registered_version(instance: DagsterInstance, kind: str, key: str) -> str | None:
    """``<model sha256>:<spec version>`` last registered for the model ``key`` — if that version was also taken
    in (the intake's latest materialization has its checksum as data version). None: new, or its run never got
    that far (cancelled, crashed, still queued), so a re-upload runs it again."""
    records = instance.fetch_observations(
        AssetRecordsFilter(asset_key=AssetKey(spec_asset_name(kind)), asset_partitions=[key]), limit=1).records
    if not records or records[0].asset_observation is None:
        return None
    observation = records[0].asset_observation
    sha = observation.metadata.get(MODEL_SHA_KEY)
    if sha is None:
        return None
    intake = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(INTAKE_ASSET_BY_KIND[kind]), asset_partitions=[key]), limit=1).records
    taken = intake[0].asset_materialization.tags.get(DATA_VERSION_TAG) if intake else None
    return f"{sha.value}:{(observation.tags or {}).get(DATA_VERSION_TAG)}" if taken == sha.value else None


@sensor(
    name="upload_sensor", jobs=list(JOBS_BY_KIND.values()), minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers each model in the landing zone as a partition (its path) and validates each new "
                "version of it (new bytes or a new spec).",
)
def upload_sensor(context: SensorEvaluationContext, settings: ValidibotSettings):
    result = scan(settings.landing_uri, context.cursor, max_new=MAX_NEW_PER_TICK, log=context.log.info)
    for reason in result.skipped:
        context.log.warning(reason)
    new_keys: dict[str, list[str]] = {}
    latest: dict[tuple[str, str], Upload] = {}  # one run per model per tick: its newest version
    for upload in result.uploads:
        latest[(upload.kind, upload.key)] = upload
    events, unchanged = [], 0
    to_run: dict[str, list[Upload]] = {}
    for (kind, key), upload in latest.items():
        partitions = PARTITIONS_BY_KIND[kind]
        if not context.instance.has_dynamic_partition(partitions.name, key):
            new_keys.setdefault(kind, []).append(key)
        elif registered_version(context.instance, kind, key) == upload.version:
            unchanged += 1
            context.log.info(f"{model_path(key)}: same bytes and spec as its validated version; nothing to do (to "
                             "run it again, materialize its partition in the UI or `validibot backfill`)")
            continue
        to_run.setdefault(kind, []).append(upload)
        # The version each run validates, recorded before it starts: the intake's provenance names the spec, a
        # later spec change shows the partition as stale (assets/specs.py), a re-upload of it is skipped above.
        events.append(version_observation(kind, key, upload.spec_sha256, upload.sha256))
    size = batch_size()
    requests = [r for kind, uploads in to_run.items()
                for r in run_requests(kind, uploads, set(new_keys.get(kind, [])), size)]
    if not requests and not result.skipped:
        reason = (f"{result.pending} upload(s) still being written" if result.pending
                  else f"{unchanged} unchanged re-upload(s)" if unchanged else "no new uploads")
        return SensorResult(skip_reason=SkipReason(reason), cursor=result.cursor)
    return SensorResult(
        run_requests=requests,
        asset_events=events,
        dynamic_partitions_requests=[PARTITIONS_BY_KIND[k].build_add_request(v) for k, v in new_keys.items() if v],
        cursor=result.cursor,
    )
