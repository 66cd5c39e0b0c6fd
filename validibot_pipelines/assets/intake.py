"""The intake step every validator shares: check the upload, store it by checksum, report, gate downstream.

:func:`intake_asset` builds each validator's intake asset (its name, kinds, facts and check wording differ;
the body does not).
"""

import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    Failure,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
    asset,
)

from validibot_pipelines.assets.batch import ModelResult, per_model
from validibot_pipelines.assets.checks import intake_check
from validibot_pipelines.orchestration.models import IntakeRecordMissing, ModelRecord, intake, missing_record
from validibot_pipelines.orchestration.names import model_path
from validibot_pipelines.orchestration.revalidate import revalidation_record
from validibot_pipelines.resources.settings import ValidibotSettings


class UploadConfig(Config):
    """One upload a sensor run takes in: the landing file, its spec, the checksum the sensor registered."""

    source_uri: str = ""
    spec_uri: str = ""
    sha256: str = ""  # bytes changed since → an INFO SOURCE_CHANGED finding


class IntakeConfig(UploadConfig):
    """Set by the upload sensor: one upload (the fields), or ``uploads`` by partition for a grouped run of
    several models. Left empty (schedules, backfills) the stored canonical copy is re-used (intake is re-done
    from the landing file only when the model's spec changed since)."""

    uploads: dict[str, UploadConfig] = {}


def attempt_of(context: AssetExecutionContext) -> str:
    """Execution bundles are named per Dagster run, so retries of a run replay and new runs recompute."""
    return context.run.run_id.split("-")[0]


def run_intake(context: AssetExecutionContext, config: IntakeConfig, settings: ValidibotSettings, kind: str,
               fact_keys: Iterable[str]) -> Iterator[Any]:
    """Intake of each model of the step; a model without an intake record fails alone (``failed_runtime``),
    never the batch it is in (nightly plans include registered-but-missing partitions)."""
    if config.source_uri and len(context.partition_keys) > 1:
        raise Failure(description="source_uri names one upload; run it for one partition, not a batch")

    def one(key: str, _upstream: Mapping[str, Any]) -> ModelResult:
        upload = config.uploads.get(key) or (config if config.source_uri else None)
        if upload is not None:
            record = intake(upload.source_uri, store_uri=settings.store_uri, spec_uri=upload.spec_uri or None,
                            expected_sha256=upload.sha256 or None, limits=settings.intake_limits(),
                            model_name=model_path(key))
        else:
            try:
                record = revalidation_record(settings.store_uri, key, settings.intake_limits())
            except IntakeRecordMissing as exc:  # only this: a landing file vanishing mid-re-intake fails the run
                record = missing_record(key, kind, str(exc))
        # The version's identity is its checksum: Dagster's data version of the model's intake, so a changed
        # file under the same name marks everything downstream stale, and the timeline shows each version.
        return ModelResult(record.model_dump(mode="json"), _metadata(record, fact_keys), [intake_check(record)],
                           data_version=record.sha256 if record.status.value != "failed_runtime" else None)

    yield from per_model(context, {}, one)


def _metadata(record: ModelRecord, fact_keys: Iterable[str]) -> dict[str, Any]:
    return {
        "status": record.status.value,
        "model": record.name or record.file_name,
        "findings": MetadataValue.md("\n".join(f"- **{m.code}** {m.text}" for m in record.findings[:20]) or "none"),
        "sha256": record.sha256,
        "file_name": record.file_name,
        "size_bytes": record.size_bytes,
        "source_uri": MetadataValue.url(record.source_uri),
        "canonical_uri": MetadataValue.url(record.canonical_uri) if record.canonical_uri else "not stored",
        "assertions": len((record.spec or {}).get("assertions", [])),
        **{key: str(record.facts.get(key, "")) for key in fact_keys},
    }


def intake_asset(validator: str, name: str, *, partitions_def: PartitionsDefinition, kinds: set[str],
                 description: str, accepted_means: str, fact_keys: tuple[str, ...]) -> AssetsDefinition:
    """``validator``'s intake asset: depends on its ``<validator>_spec`` source (a changed spec makes the model's
    partitions stale), blocking check ``intake_accepted`` (``accepted_means`` says what passed)."""

    with warnings.catch_warnings():  # partitioned check specs are a Dagster preview (each model's own history)
        warnings.simplefilter("ignore", PreviewWarning)
        check = AssetCheckSpec("intake_accepted", asset=name, blocking=True, description=accepted_means,
                               partitions_def=partitions_def)

    @asset(name=name, partitions_def=partitions_def, group_name=validator, kinds=kinds,
           deps=[AssetKey(f"{validator}_spec")], description=description,
           check_specs=[check])
    def _intake(context: AssetExecutionContext, config: IntakeConfig, settings: ValidibotSettings):
        yield from run_intake(context, config, settings, validator, fact_keys=fact_keys)

    return _intake
