"""``validibot backfill``: submit a real Dagster backfill of one validator's assets to the instance (and the parser of
``validibot migrate``, whose code loads only when it runs).

The instance is ``$DAGSTER_HOME`` (the same one ``dagster dev`` / the daemon use); the daemon launches the
runs, each covering up to the backfill policy's batch size of models.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("backfill", help="submit a Dagster backfill of a validator's assets ($DAGSTER_HOME)")
    b.add_argument("--validator", required=True, help="validator asset group (see validibot validators)")
    which = b.add_mutually_exclusive_group(required=True)
    which.add_argument("--partitions", help="comma-separated models: their paths in the landing zone "
                       "(e.g. hvac/ahu.fmu) or partition keys as the UI shows them")
    which.add_argument("--all", action="store_true", help="every registered model of the validator")
    which.add_argument("--stale", action="store_true", help="only stale or missing models (what the nightly job picks)")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from validibot_pipelines.definitions import defs
    from validibot_pipelines.operations.backfill import submit_backfill
    from validibot_pipelines.operations.nightly import revalidate_stale
    from validibot_pipelines.operations.staleness import group_asset_keys, validator_groups
    from validibot_pipelines.orchestration.names import name_from

    asset_graph = defs.resolve_asset_graph()
    groups = validator_groups(asset_graph)
    if args.validator not in groups:
        print(f"validibot backfill: unknown validator {args.validator!r}; known: {', '.join(groups)}", file=sys.stderr)
        return 2
    instance = DagsterInstance.get()
    if args.stale:
        settings = defs.resources["settings"]
        done = revalidate_stale(instance, asset_graph, settings.store_uri, instance.report_runless_asset_event,
                                trigger="cli", groups=[args.validator])
        plan, backfill_id = done[args.validator]
        print(f"{args.validator}: {len(plan.partitions)} stale/missing, {plan.fresh} fresh")
        for partition, reasons in plan.reasons.items():
            print(f"  {partition}: {'; '.join(reasons)}")
        if backfill_id is None:
            return 0
    else:
        partitions = None if args.all else [name_from(p.strip()) for p in args.partitions.split(",") if p.strip()]
        try:
            backfill_id = submit_backfill(instance, asset_graph, group_asset_keys(asset_graph, args.validator),
                                          partitions, trigger="cli",
                                          title=f"validibot backfill --validator {args.validator}")
        except ValueError as exc:
            print(f"validibot backfill: {exc}", file=sys.stderr)
            return 2
    print(f"submitted backfill {backfill_id}; the Dagster daemon (dagster dev or dagster-daemon) launches its runs")
    return 0


def add_migrate_parser(sub: argparse._SubParsersAction) -> None:
    """``validibot migrate``; its code is imported only when it runs (every command builds this parser)."""
    m = sub.add_parser("migrate", help="one-off: re-key models an older validibot partitioned by checksum "
                                       "into partitions by name ($DAGSTER_HOME)")
    m.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    from validibot_pipelines.operations.migrate import run

    return run(args)
