"""Run an asset's per-model body over every partition of its step: one model, or a backfill batch.

Backfills use ``BackfillPolicy.multi_run(n)``: one run (and one step per asset) covers up to ``n`` models,
so hundreds of models do not mean hundreds of run workers. Each asset writes its body for ONE model; this
module runs it for each partition of the step and keeps what an analyst sees per partition:

* one partition (sensor runs, UI "Materialize" of a partition): exactly the single-model behaviour —
  ``Output`` with metadata, then the ``AssetCheckResult``s; blocking checks stop downstream steps as usual.
* several partitions, or any run of a backfill (its last batch may hold one model): the output is
  ``{partition: value}`` for several (see ``StoreIOManager``), each partition gets its own metadata
  (``add_asset_metadata(partition_key=...)``) and its own check evaluations, targeted at that partition's
  materialization. Dagster's step-level blocking would stop the WHOLE batch (and fail the backfill) when one
  model fails intake, so here the block is applied per model instead: a model whose upstream value is not
  ``success`` (exactly what the blocking checks test) is not processed and is recorded as ``blocked``.

A body may return ``None``: its worker was launched on an asynchronous backend (Cloud Run Jobs) and the output
sensor materializes the result later (``assets/backend_step.py``). For one partition nothing is materialized
(the asset's output is optional); in a batch the model is recorded as ``launched`` (downstream steps of the
batch treat it like ``blocked``) until the collecting run overwrites it with the result.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetExecutionContext,
    AssetRecordsFilter,
    BetaWarning,
    DataVersion,
    Output,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.storage.tags import BACKFILL_ID_TAG

from validibot_pipelines.assets.metadata import analyst_order, outcome_metadata

BLOCKED = "blocked"
LAUNCHED = "launched"


@dataclass
class ModelResult:
    """What an asset produced for one model (partition)."""

    value: dict[str, Any]
    metadata: dict[str, Any]
    checks: list[AssetCheckResult] = field(default_factory=list)
    data_version: str | None = None  # intake: the model's SHA-256 (one partition per step only, see per_model)


Body = Callable[[str, Mapping[str, Any]], ModelResult | None]
#: Runs the bodies of a batch's unblocked models, in order (default: one after the other; worker steps run
#: them side by side so their launches share worker launches, ``orchestration/batching.py``).
RunAll = Callable[[list[tuple[str, Mapping[str, Any]]]], list[ModelResult | None]]


def one_by_one(body: Body) -> RunAll:
    return lambda items: [body(key, ups) for key, ups in items]


def blocked_by(upstream: Mapping[str, Any]) -> list[str]:
    """Upstream assets whose value for this model is not ``success`` (what the blocking checks enforce)."""
    return [name for name, value in upstream.items() if (value or {}).get("status") != "success"]


def per_model(context: AssetExecutionContext, upstream: Mapping[str, Any], body: Body,
              run_all: RunAll | None = None) -> Iterator[Any]:
    keys = list(context.partition_keys)
    if len(keys) == 1 and BACKFILL_ID_TAG not in context.run.tags:
        result = _presented(body(keys[0], upstream))
        if result is None:  # launched asynchronously: the output sensor materializes it later
            return
        output_name = context.assets_def.get_output_name_for_asset_key(context.asset_key)
        with warnings.catch_warnings():  # Output(data_version=…) is beta in this Dagster; the pin keeps it stable
            warnings.simplefilter("ignore", BetaWarning)
            yield Output(result.value, output_name=output_name, metadata=result.metadata,
                         data_version=DataVersion(result.data_version) if result.data_version else None)
        yield from result.checks
        return
    # A batch, or a backfill run that happens to hold one model: per-model results and blocks, so one model's
    # failure never fails its run (and the backfill) — a backfill fails only when the system does.
    yield from _per_model_in_backfill(context, keys, upstream, run_all or one_by_one(body))


def _per_model_in_backfill(context: AssetExecutionContext, keys: list[str], upstream: Mapping[str, Any],
                           run_all: RunAll) -> Iterator[Any]:
    keyed = len(keys) > 1  # StoreIOManager: a step over several partitions passes {partition: value}
    output_name = context.assets_def.get_output_name_for_asset_key(context.asset_key)
    values: dict[str, Any] = {}
    checks: dict[str, list[AssetCheckResult]] = {}
    results: dict[str, ModelResult] = {}
    runnable: list[tuple[str, Mapping[str, Any]]] = []
    for key in keys:
        ups = {name: by_key[key] for name, by_key in upstream.items()} if keyed else dict(upstream)
        blockers = blocked_by(ups)
        if blockers:
            context.log.info(f"{key}: not processed, upstream {', '.join(blockers)} did not succeed")
            results[key] = ModelResult({"status": BLOCKED, "blocked_by": blockers},
                                       {"status": BLOCKED, "blocked_by": ", ".join(blockers)})
        else:
            runnable.append((key, ups))
    for (key, _ups), produced in zip(runnable, run_all(runnable), strict=True):
        results[key] = _presented(produced) or ModelResult({"status": LAUNCHED}, {"status": LAUNCHED})
    for key in keys:
        result = results[key]
        values[key] = result.value
        _add_partition_metadata(context, result.metadata, key)
        checks[key] = result.checks
    yield Output(values if keyed else values[keys[0]], output_name=output_name)
    evaluated = set()
    targets = _materializations_of(context, [key for key, results in checks.items() if results])
    for key, results in checks.items():
        if not results:
            continue
        target = targets[key]
        for check in results:
            evaluation = _evaluation(context, target, check, key)
            evaluated.add(evaluation.asset_check_key)
            yield evaluation
    # Each check is also a (valueless) step output, yielded once per step however many partitions it covered.
    for check_key in context.assets_def.check_keys:
        if check_key in evaluated:
            yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))


def _presented(result: ModelResult | None) -> ModelResult | None:
    """The model's metadata with its outcome first and the plumbing last (``assets/metadata.py``)."""
    if result is None:
        return None
    meta = {**outcome_metadata(result.checks, result.value), **result.metadata}
    return ModelResult(result.value, analyst_order(meta), result.checks, result.data_version)


def _add_partition_metadata(context: AssetExecutionContext, metadata: dict[str, Any], partition: str) -> None:
    """``context.add_asset_metadata(metadata, partition_key=partition)`` without its per-call partition check.

    Why not the public call: for a dynamic partitions definition it re-reads every partition of the definition
    from storage (two queries) on each call, to confirm the key is in the step's range — O(N) per model, O(N²)
    per batch (36 ms per model measured on SQLite with 25 models). ``partition`` comes from
    ``context.partition_keys``, so the check can't fail here; the same accumulator the public call updates is
    updated directly (Dagster pinned in pyproject). Falls back to the public call if that internal moves.
    """
    step = getattr(getattr(context, "op_execution_context", None), "_step_execution_context", None)
    accumulator = getattr(step, "_metadata_accumulator", None)
    if accumulator is None or not hasattr(accumulator, "with_additional_asset_metadata"):
        context.add_asset_metadata(metadata, partition_key=partition)
        return
    step._metadata_accumulator = accumulator.with_additional_asset_metadata(  # noqa: SLF001 - see docstring
        asset_key=context.asset_key, metadata=metadata, partition_key=partition)


def _materializations_of(context: AssetExecutionContext, partitions: list[str]) -> dict[str, Any]:
    """The step's just-stored materialization of each partition (what that model's check evaluations target),
    in one query for the batch rather than one per model."""
    if not partitions:
        return {}
    # Newest first: the step stored these after any earlier materialization of the same partitions.
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=partitions), limit=len(partitions)).records
    latest: dict[str, Any] = {}
    for record in records:
        latest.setdefault(record.partition_key, record)
    for partition in [p for p in partitions if p not in latest]:  # another run interleaved: ask for it alone
        latest[partition] = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[partition]), limit=1).records[0]
    return latest


def _evaluation(context: AssetExecutionContext, target: Any, check: AssetCheckResult,
                partition: str) -> AssetCheckEvaluation:
    return AssetCheckEvaluation(
        partition=partition,  # the model's own check history (the checks are partitioned like their asset)
        asset_key=check.asset_key or context.asset_key, check_name=check.check_name, passed=check.passed,
        metadata=check.metadata, severity=check.severity, description=check.description,
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=target.storage_id, run_id=target.run_id, timestamp=target.timestamp),
        blocking=False,  # enforced per model above; a step-level block would stop the whole batch
    )
