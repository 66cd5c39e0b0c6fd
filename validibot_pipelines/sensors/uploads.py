"""The upload sensor: new files in the landing zone → dynamic partitions (by checksum) → runs.

Entries that cannot be taken in (symlinks, FIFOs, unreadable files, unknown types) come back from the scan as
``skipped`` reasons and are logged as warnings, once each; they never fail the tick, so one bad entry cannot stop
every later upload from being processed.
"""

import os

from dagster import (
    AssetObservation,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from validibot_pipelines.assets.specs import spec_asset_name
from validibot_pipelines.jobs import INTAKE_ASSET_BY_KIND, JOBS_BY_KIND
from validibot_pipelines.orchestration.revalidate import spec_version
from validibot_pipelines.partitions import PARTITIONS_BY_KIND
from validibot_pipelines.resources.settings import ValidibotSettings
from validibot_pipelines.sensors.landing import scan

MAX_NEW_PER_TICK = 50
# How often the daemon evaluates the sensor; tests shorten it.
INTERVAL_SECONDS = int(os.environ.get("VALIDIBOT_SENSOR_INTERVAL_SECONDS", "15"))


def intake_run_config(kind: str, source_uri: str, spec_uri: str | None) -> dict:
    """The run config that points a validator's job at one upload (and its spec)."""
    return {"ops": {INTAKE_ASSET_BY_KIND[kind]: {"config": {"source_uri": source_uri, "spec_uri": spec_uri or ""}}}}


@sensor(
    name="upload_sensor", jobs=list(JOBS_BY_KIND.values()), minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers each new upload in the landing zone as a partition (its SHA-256) and validates it.",
)
def upload_sensor(context: SensorEvaluationContext, settings: ValidibotSettings):
    result = scan(settings.landing_uri, context.cursor, max_new=MAX_NEW_PER_TICK, log=context.log.info)
    for reason in result.skipped:
        context.log.warning(reason)
    new_keys: dict[str, list[str]] = {}
    requests = []
    for upload in result.uploads:
        partitions = PARTITIONS_BY_KIND[upload.kind]
        if not context.instance.has_dynamic_partition(partitions.name, upload.sha256) and \
                upload.sha256 not in new_keys.setdefault(upload.kind, []):
            new_keys[upload.kind].append(upload.sha256)
        requests.append(RunRequest(
            run_key=upload.run_key,
            job_name=JOBS_BY_KIND[upload.kind].name,
            partition_key=upload.sha256,
            run_config=intake_run_config(upload.kind, upload.uri, upload.spec_uri),
            tags={"validibot/source_uri": upload.uri, "validibot/kind": upload.kind},
        ))
    if not requests and not result.skipped:
        reason = f"{result.pending} upload(s) still being written" if result.pending else "no new uploads"
        return SensorResult(skip_reason=SkipReason(reason), cursor=result.cursor)
    return SensorResult(
        run_requests=requests,
        # The spec each run will use, recorded before it starts, so the intake's provenance names it and a
        # later spec change shows the partition as stale (see assets/specs.py).
        asset_events=[AssetObservation(asset_key=spec_asset_name(u.kind), partition=u.sha256,
                                       tags={DATA_VERSION_TAG: spec_version(u.spec_sha256)}) for u in result.uploads],
        dynamic_partitions_requests=[PARTITIONS_BY_KIND[k].build_add_request(v) for k, v in new_keys.items() if v],
        cursor=result.cursor,
    )
