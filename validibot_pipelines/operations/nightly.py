"""The nightly re-validation: observe every model's spec, pick the stale or missing partitions of each
validator group (Dagster's own staleness), and submit one backfill per group for just those.

A schedule, not declarative automation, because (1) schedules cannot launch backfills but this job can, so
the re-validation runs in batches under the backfill policy instead of one run per model; (2) it asks the
same resolver the UI uses, so "stale" means the same thing in the UI and in the re-run set; (3) it reports
what it picked and why (run metadata), and a fresh partition is never re-run.
"""


import os
from collections.abc import Callable

from dagster import (
    AssetKey,
    AssetObservation,
    DagsterInstance,
    DefaultScheduleStatus,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    job,
    op,
)
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph

from validibot_pipelines.assets.specs import spec_asset_name, spec_states
from validibot_pipelines.operations.backfill import submit_backfill
from validibot_pipelines.operations.staleness import RevalidationPlan, plan_revalidation, validator_groups
from validibot_pipelines.resources.settings import ValidibotSettings
from validibot_pipelines.sensors.uploads import version_observation

NIGHTLY_CRON = os.environ.get("VALIDIBOT_NIGHTLY_CRON", "0 2 * * *")


def revalidate_stale(instance: DagsterInstance, asset_graph: BaseAssetGraph, store_uri: str,
                     log_event: Callable[[AssetObservation], None], trigger: str,
                     groups: list[str] | None = None) -> dict[str, tuple[RevalidationPlan, str | None]]:
    """Observe specs, plan, submit. Returns {group: (plan, backfill id or None when all fresh)}."""
    done: dict[str, tuple[RevalidationPlan, str | None]] = {}
    for group in groups or validator_groups(asset_graph):
        spec_key = AssetKey(spec_asset_name(group))
        if asset_graph.has(spec_key):
            partitions_def = asset_graph.get(spec_key).partitions_def
            keys = partitions_def.get_partition_keys(dynamic_partitions_store=instance) if partitions_def else []
            for partition, (spec_sha, model_sha) in spec_states(group, keys, store_uri).items():
                log_event(version_observation(group, partition, spec_sha, model_sha))
        plan = plan_revalidation(instance, asset_graph, group)
        backfill_id = None
        if plan.partitions:
            backfill_id = submit_backfill(
                instance, asset_graph, plan.asset_keys, plan.partitions, trigger=trigger,
                title=f"re-validate {len(plan.partitions)} stale/missing {group} model(s)",
                description="\n".join(f"{p}: {'; '.join(r)}" for p, r in plan.reasons.items())[:4000])
        done[group] = (plan, backfill_id)
    return done


@op(description="Observe every model's spec, find the stale/missing partitions per validator, backfill them.")
def revalidate_stale_partitions(context: OpExecutionContext, settings: ValidibotSettings):  # noqa: ANN201
    done = revalidate_stale(context.instance, context.repository_def.asset_graph, settings.store_uri,
                            context.log_event, trigger="nightly")
    meta = {}
    for group, (plan, backfill_id) in done.items():
        context.log.info(f"{group}: {len(plan.partitions)} to re-validate, {plan.fresh} fresh, backfill {backfill_id}")
        meta[f"{group}_to_revalidate"] = len(plan.partitions)
        meta[f"{group}_fresh"] = plan.fresh
        meta[f"{group}_backfill"] = backfill_id or "none (all fresh)"
        meta[f"{group}_reasons"] = MetadataValue.json(plan.reasons)
    yield Output(None, metadata=meta)


@job(description="Nightly: re-validate the models whose validator code version or spec changed, or that are missing")
def nightly_revalidation():
    revalidate_stale_partitions()


nightly_schedule = ScheduleDefinition(
    name="nightly_revalidation_schedule", job=nightly_revalidation, cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
    description="Submits batched backfills of the stale or missing model partitions of every validator.",
)
