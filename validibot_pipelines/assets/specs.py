"""``<kind>_spec``: one observable source asset per validator, partitioned like its models.

Its data version per partition is the SHA-256 of the spec that applies to the model (``nospec`` without
one; see :mod:`validibot_pipelines.orchestration.revalidate`). The upload sensor records it for every upload
before the run starts, and observing the asset (the nightly job does) records it again. Because every
validator asset depends on it (the intake and each worker step: the intake's data version is the model's
checksum, which a spec change leaves alone), Dagster's own staleness marks a model's partitions stale when
its spec changes — the same status the UI shows and the nightly re-validation picks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

from dagster import (
    BetaWarning,
    DataVersion,
    DataVersionsByPartition,
    DynamicPartitionsDefinition,
    observable_source_asset,
)

from validibot_pipelines.orchestration.models import load_record
from validibot_pipelines.orchestration.revalidate import current_spec, spec_version
from validibot_pipelines.partitions import PARTITIONS_BY_KIND
from validibot_pipelines.resources.settings import ValidibotSettings


def spec_asset_name(kind: str) -> str:
    return f"{kind}_spec"


def spec_states(kind: str, keys: Iterable[str], store_uri: str,
                warn: Callable[[str], None] = lambda _m: None) -> dict[str, tuple[str | None, str]]:
    """(current spec SHA-256 or None, model SHA-256) of each model (those without an intake record left out)."""
    states = {}
    for key in keys:
        try:
            record = load_record(store_uri, key)
        except FileNotFoundError as exc:
            warn(f"{kind} model {key}: spec not observed: {exc}")
            continue
        states[key] = (current_spec(record, store_uri)[1], record.sha256)
    return states


def spec_versions(kind: str, keys: Iterable[str], store_uri: str,
                  warn: Callable[[str], None] = lambda _m: None) -> dict[str, DataVersion]:
    """The current spec data version of each model (models without an intake record are left out)."""
    return {key: DataVersion(spec_version(spec)) for key, (spec, _) in spec_states(kind, keys, store_uri, warn).items()}


def spec_source(kind: str, partitions_def: DynamicPartitionsDefinition):  # noqa: ANN201 - a SourceAsset
    @observable_source_asset(
        name=spec_asset_name(kind), partitions_def=partitions_def, group_name=kind,
        description=f"The validation spec of each {kind} model (data version = its SHA-256, or `nospec`); "
                    "a changed spec makes the model's partitions stale.",
        owners=["team:validation"], tags={"validibot/validator": kind, "validibot/layer": "source"},
    )
    def _observe(context, settings: ValidibotSettings) -> DataVersionsByPartition:  # noqa: ANN001
        if context.has_partition_key or context.has_partition_key_range:
            keys = list(context.partition_keys)
        else:
            keys = context.instance.get_dynamic_partitions(partitions_def.name)
        return DataVersionsByPartition(spec_versions(kind, keys, settings.store_uri, context.log.warning))

    return _observe


with warnings.catch_warnings():  # observable_source_asset is beta in this Dagster; the pin keeps it stable
    warnings.simplefilter("ignore", BetaWarning)
    SPEC_SOURCES = {kind: spec_source(kind, partitions) for kind, partitions in PARTITIONS_BY_KIND.items()}
