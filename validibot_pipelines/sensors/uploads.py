"""The upload sensor: new files in the landing zone → dynamic partitions (by checksum) → runs."""

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
            run_config={"ops": {INTAKE_ASSET_BY_KIND[upload.kind]: {"config": {
                "source_uri": upload.uri, "spec_uri": upload.spec_uri or ""}}}},
            tags={"validibot/source_uri": upload.uri, "validibot/kind": upload.kind},
        ))
    if not requests and not result.skipped:
        return SensorResult(skip_reason=SkipReason("no new uploads"), cursor=result.cursor)
    return SensorResult(
        run_requests=requests,
        # The spec each run will use, recorded before it starts, so the intake's provenance names it and a
        # later spec change shows the partition as stale (see assets/specs.py).
        asset_events=[AssetObservation(asset_key=spec_asset_name(u.kind), partition=u.sha256,
                                       tags={DATA_VERSION_TAG: spec_version(u.spec_sha256)}) for u in result.uploads],
        dynamic_partitions_requests=[PARTITIONS_BY_KIND[k].build_add_request(v) for k, v in new_keys.items() if v],
        cursor=result.cursor,
    )
