"""Submit a real Dagster asset backfill (the same object the UI's "Materialize → Backfill" creates).

The backfill daemon (``dagster dev`` / ``dagster-daemon``) then launches its runs; each run covers up to the
backfill policy's batch size of partitions (``BackfillPolicy.multi_run``) and queues like any run, so the
run coordinator's limits and the backends' concurrency pools apply to backfills too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dagster import AssetKey, DagsterInstance
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.utils import make_new_backfill_id
from dagster._time import get_current_timestamp

BACKFILL_TRIGGER_TAG = "validibot/trigger"


def submit_backfill(instance: DagsterInstance, asset_graph: BaseAssetGraph, asset_keys: Sequence[AssetKey],
                    partitions: Sequence[str] | None, *, title: str, trigger: str,
                    description: str | None = None, tags: Mapping[str, str] | None = None) -> str:
    """Backfill ``asset_keys`` over ``partitions`` (None = every registered partition); returns its id."""
    if partitions is not None:
        partitions_def = asset_graph.get(asset_keys[0]).partitions_def
        known = set(partitions_def.get_partition_keys(dynamic_partitions_store=instance)) if partitions_def else set()
        unknown = [p for p in partitions if p not in known]
        if unknown:
            raise ValueError(f"no such model among the partitions of {asset_keys[0].to_user_string()}: "
                             f"{', '.join(unknown[:5])} — pass models by their path in the landing zone, as the UI's "
                             "Partitions tab lists them, or --all")
    tags = {BACKFILL_TRIGGER_TAG: trigger, **(tags or {})}
    if partitions is None:
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=make_new_backfill_id(), asset_graph=asset_graph, partition_names=None,
            asset_selection=list(asset_keys), backfill_timestamp=get_current_timestamp(), tags=tags,
            dynamic_partitions_store=instance, all_partitions=True, title=title, description=description,
            run_config=None,
        )
    else:
        # The named partitions of every selected asset, given as the subset itself: from_asset_partitions with
        # partition names would derive the same subset (a validator's assets share one partitions definition)
        # through AssetSelection.sources, deprecated in this Dagster.
        backfill = PartitionBackfill.from_asset_graph_subset(
            backfill_id=make_new_backfill_id(), backfill_timestamp=get_current_timestamp(), tags=tags,
            dynamic_partitions_store=instance, asset_graph_subset=_subset(asset_graph, asset_keys, partitions),
            title=title, description=description, run_config=None,
        )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def _subset(asset_graph: BaseAssetGraph, asset_keys: Sequence[AssetKey], partitions: Sequence[str]) -> AssetGraphSubset:
    """``partitions`` of each partitioned asset in ``asset_keys``, and the unpartitioned ones whole."""
    partitioned = {key: asset_graph.get(key).partitions_def for key in asset_keys
                   if asset_graph.get(key).is_partitioned}
    return AssetGraphSubset(
        partitions_subsets_by_asset_key={key: pdef.subset_with_partition_keys(partitions)
                                         for key, pdef in partitioned.items()},
        non_partitioned_asset_keys={key for key in asset_keys if key not in partitioned},
    )
