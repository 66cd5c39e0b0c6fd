"""Submit a real Dagster asset backfill (the same object the UI's "Materialize → Backfill" creates).

The backfill daemon (``dagster dev`` / ``dagster-daemon``) then launches its runs; each run covers up to the
backfill policy's batch size of partitions (``BackfillPolicy.multi_run``) and queues like any run, so the
run coordinator's limits and the backends' concurrency pools apply to backfills too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dagster import AssetKey, DagsterInstance
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
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(), asset_graph=asset_graph, partition_names=partitions,
        asset_selection=list(asset_keys), backfill_timestamp=get_current_timestamp(),
        tags={BACKFILL_TRIGGER_TAG: trigger, **(tags or {})}, dynamic_partitions_store=instance,
        all_partitions=partitions is None, title=title, description=description, run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id
