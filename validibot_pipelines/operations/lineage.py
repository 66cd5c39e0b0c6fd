"""Attributes every validator asset gets, applied over the asset groups (not repeated in each asset):
owners and tags for analysts, the code version (staleness), and the backfill policy (batches).

Applied in ``definitions.build_defs``; a new validator's assets need nothing of their own beyond a group name
and a docstring.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from dagster import AssetsDefinition, AssetSpec, BackfillPolicy

from validibot_pipelines.operations.versions import validator_code_version

OWNERS = [os.environ.get("VALIDIBOT_OWNER", "team:validation")]
DEFAULT_BATCH_SIZE = 25


def backfill_batch_size() -> int:
    """Partitions per backfill run (``VALIDIBOT_BACKFILL_BATCH_SIZE``, default 25)."""
    return max(1, int(os.environ.get("VALIDIBOT_BACKFILL_BATCH_SIZE", DEFAULT_BATCH_SIZE)))


def _stage(spec: AssetSpec) -> str:
    # Intake assets depend on the spec source; every later stage runs on the isolated worker.
    return "intake" if any(dep.asset_key.path[-1].endswith("_spec") for dep in spec.deps) else "worker"


def with_operations(assets: Iterable[AssetsDefinition],
                    code_versions: Mapping[str, str] | None = None) -> list[AssetsDefinition]:
    """Each asset with owners, tags, its group's code version and a multi-run backfill policy.

    ``code_versions`` overrides the derived version per group (what a deploy of a new validator does; tests
    use it to simulate one).
    """
    overrides = dict(code_versions or {})
    policy = BackfillPolicy.multi_run(backfill_batch_size())
    out = []
    for asset in assets:
        def spec_with_ops(spec: AssetSpec) -> AssetSpec:
            group = spec.group_name or "default"
            return spec.replace_attributes(
                owners=[*spec.owners, *(o for o in OWNERS if o not in spec.owners)],
                tags={**spec.tags, "validibot/validator": group, "validibot/stage": _stage(spec)},
                code_version=overrides.get(group) or validator_code_version(group),
            )

        out.append(asset.map_asset_specs(spec_with_ops).with_attributes(backfill_policy=policy))
    return out
