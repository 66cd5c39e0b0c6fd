"""Which models of a validator need re-validating: Dagster's own stale/missing status, per partition.

Uses the resolver behind the UI's "Stale" badges (``CachingStaleStatusResolver``; a private Dagster class,
pinned with dagster==1.13.27), so what the nightly job re-runs is exactly what the UI shows as stale or
missing: the group's code version changed, the model's spec changed (the ``<kind>_spec`` data version), an
upstream asset was re-materialized with new data, or the partition never materialized.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagster import AssetKey, DagsterInstance
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime


@dataclass
class RevalidationPlan:
    """The partitions of one validator group that are not fresh, and why."""

    group: str
    asset_keys: list[AssetKey]
    partitions: list[str] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    fresh: int = 0


def group_asset_keys(asset_graph: BaseAssetGraph, group: str) -> list[AssetKey]:
    """The group's materializable assets, upstream first (the spec source is observed, not materialized)."""
    return [key for key in asset_graph.toposorted_asset_keys
            if key in asset_graph.materializable_asset_keys and asset_graph.get(key).group_name == group]


def validator_groups(asset_graph: BaseAssetGraph) -> list[str]:
    """Groups whose assets are partitioned by model (every validator; not the ops jobs)."""
    return sorted({asset_graph.get(k).group_name for k in asset_graph.materializable_asset_keys
                   if asset_graph.get(k).partitions_def is not None})


def resolver(instance: DagsterInstance, asset_graph: BaseAssetGraph) -> CachingStaleStatusResolver:
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance, asset_graph, view)


def plan_revalidation(instance: DagsterInstance, asset_graph: BaseAssetGraph, group: str) -> RevalidationPlan:
    keys = group_asset_keys(asset_graph, group)
    plan = RevalidationPlan(group=group, asset_keys=keys)
    if not keys:
        return plan
    partitions_def = asset_graph.get(keys[0]).partitions_def
    assert partitions_def is not None, f"group {group} is not partitioned"
    status = resolver(instance, asset_graph)
    for partition in partitions_def.get_partition_keys(dynamic_partitions_store=instance):
        why = []
        for key in keys:
            state = status.get_status(key, partition)
            if state == StaleStatus.MISSING:
                why.append(f"{key.to_user_string()}: missing")
            elif state == StaleStatus.STALE:
                causes = "; ".join(sorted({c.reason for c in status.get_stale_root_causes(key, partition)}))
                why.append(f"{key.to_user_string()}: stale ({causes})")
        if why:
            plan.partitions.append(partition)
            plan.reasons[partition] = why
        else:
            plan.fresh += 1
    return plan
