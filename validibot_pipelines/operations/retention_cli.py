"""``validibot prune --older-than 30d [--dry-run] [--store URI]``: the retention of ``operations/retention.py``."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="remove execution bundles (runs/<run_id>/) older than an age; never models, "
                       "never a bundle whose output was not collected; the replay index stays consistent")
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 90m (units s m h d w)")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed; delete nothing")
    p.add_argument("--store", help="store URI: file:///…, gs://bucket/prefix, s3://bucket/prefix "
                                   "(default: $VALIDIBOT_STORE_URI or .validibot/store)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from validibot_pipelines.operations.retention import execute, parse_age, plan_prune, report_lines
    from validibot_pipelines.settings import default_store_uri
    from validibot_pipelines.storage import StorageError

    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        print(f"validibot prune: {exc}", file=sys.stderr)
        return 2
    store_uri = args.store or default_store_uri()
    try:
        plan = plan_prune(store_uri, age)
        deleted = [] if args.dry_run else execute(plan)
    except (StorageError, ValueError, OSError) as exc:
        print(f"validibot prune: {store_uri}: {exc}; check the URI and that the store is reachable", file=sys.stderr)
        return 2
    for line in report_lines(plan, dry_run=args.dry_run, deleted=deleted):
        print(line)
    return 0
