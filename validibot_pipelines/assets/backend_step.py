"""Assets that launch a worker on the validator's backend, synchronous or not, through one decorator.

:func:`worker_step_asset` builds each validator step's asset from a :class:`WorkerStep`: ``@multi_asset`` with
one skippable asset, ``can_subset=True`` (so neither the asset nor
its checks must be emitted) and ``pool=validibot-<backend>`` (the backend's concurrency pool). With a
synchronous backend (local, Docker, Modal) the step launches, waits and materializes as usual. With Cloud Run
Jobs the step launches, records an :class:`AssetObservation` (backend, execution name, job status) and ends
without materializing; downstream assets are skipped. When the output envelope lands in the bundle the
output sensor requests a run of this asset (and its downstream) with ``collect_input_uri`` set and
``run_key = callback_id``: the step then reads the result instead of launching, and materializes it with
its checks — so the UI shows "launched" on the asset's timeline, then the result, then the next step.
"""


import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetObservation,
    AssetOut,
    Config,
    PartitionsDefinition,
    PreviewWarning,
    multi_asset,
)
from pydantic import Field

from validibot_pipelines.assets.batch import ModelResult, per_model
from validibot_pipelines.assets.metadata import envelope_metadata, launch_metadata
from validibot_pipelines.envelopes import OutputEnvelope
from validibot_pipelines.orchestration.batching import together
from validibot_pipelines.orchestration.launch import collect_step
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.select import pool_for
from validibot_pipelines.resources.settings import ValidibotSettings


class WorkerStepConfig(Config):
    """Set by the output sensor only: read the result of this launch instead of launching."""

    collect_input_uri: str = Field(default="", description="input envelope of an asynchronous launch to collect")


def launch_or_collect(
    context: AssetExecutionContext, config: WorkerStepConfig, partition: str,
    launch: Callable[[], tuple[OutputEnvelope | None, LaunchRecord]],
) -> tuple[OutputEnvelope, LaunchRecord] | None:
    """Launch (or, in a sensor-requested run, collect) ``partition``'s step; ``None`` while an asynchronous
    launch is pending (the body then returns ``None`` to ``assets.batch.per_model``)."""
    if config.collect_input_uri:
        out, record = collect_step(config.collect_input_uri)
        context.log.info(f"collected {record.backend} {record.launch_id} ({record.status}) for {out.run_id}")
        return out, record
    out, record = launch()
    if out is None:
        context.log_event(AssetObservation(
            asset_key=context.asset_key, partition=partition,
            metadata={"state": "launched: the output sensor materializes the result when the worker finishes",
                      **launch_metadata(record)}))
        return None
    return out, record


Present = Callable[[ModelRecord, Mapping[str, Any], OutputEnvelope, dict[str, Any]], ModelResult]


def run_worker_step(context: AssetExecutionContext, config: WorkerStepConfig, upstream: Mapping[str, Any],
                    step: "WorkerStep", env: "StepEnv") -> Iterator[Any]:
    """The body every worker asset shares, per model (one partition or a backfill batch):

    read the model's intake record from the upstream asset ``step.upstream[0]``, launch (or collect) its worker
    step, and hand the output envelope with the launch metadata (backend, launch id, image, timings, log) to
    ``step.present``, which adds the validator's own metadata and checks. Pending asynchronous launches yield
    nothing (see :func:`launch_or_collect` and ``assets.batch.per_model``). In a batch every model's launch
    joins one worker launch on the backend (``orchestration/batching.py``).
    """

    from validibot_pipelines.assertions.cel import warm_up

    warm_up()  # the CEL parser builds while the worker runs (the results' assertions need it)

    def one(key: str, up: Mapping[str, Any], backend: Any) -> ModelResult | None:
        record = ModelRecord.model_validate(up[step.upstream[0]])
        launched = launch_or_collect(context, config, key,
                                     lambda: step.launch(record, up, replace(env, backend=backend)))
        if launched is None:
            return None
        out, launch_record = launched
        # Which model and version this is (the partition names the model; the checksum, the version), then
        # the envelope and launch details; analyst_order puts the plumbing last.
        meta = {"model": record.name or record.file_name, **envelope_metadata(out), **launch_metadata(launch_record),
                "sha256": record.sha256}
        return step.present(record, up, out, meta)

    def run_all(items: list[tuple[str, Mapping[str, Any]]]) -> list[ModelResult | None]:
        return together(items, lambda item, backend: one(item[0], item[1], backend), env.backend, context)

    yield from per_model(context, upstream, lambda key, up: one(key, up, env.backend), run_all)


@dataclass(frozen=True)
class StepEnv:
    """What a worker step's launch needs from its Dagster step: settings, backend, attempt and the context."""

    settings: ValidibotSettings
    backend: Any
    attempt: str
    context: AssetExecutionContext

    @property
    def launch_args(self) -> dict[str, Any]:
        """The arguments every validator's launch function takes (store, backend, attempt, worker timeout)."""
        return {"store_uri": self.settings.store_uri, "backend": self.backend, "attempt": self.attempt,
                "timeout_seconds": self.settings.worker_timeout_seconds, "context": self.context}


@dataclass(frozen=True)
class WorkerStep:
    """One validator step that runs on a worker: what it reads, how it launches, how its result is shown.

    ``upstream`` are the asset names it reads (the first is the intake asset holding the model's record);
    ``checks`` its asset checks (name → what passing means; those in ``blocking`` stop downstream steps);
    ``launch(record, upstream_values, env)`` starts the worker; ``present`` turns the output envelope into the
    asset's value, metadata and check results.
    """

    name: str
    validator: str
    partitions_def: PartitionsDefinition
    kinds: set[str]
    checks: Mapping[str, str]
    upstream: Sequence[str]
    launch: Callable[[ModelRecord, Mapping[str, Any], StepEnv], tuple[OutputEnvelope | None, LaunchRecord]]
    present: Present
    description: str
    blocking: Sequence[str] = ()

    def check_specs(self) -> list[AssetCheckSpec]:
        # Partitioned like the asset (a Dagster preview): each model's Checks tab shows its own history.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PreviewWarning)
            return [AssetCheckSpec(name, asset=self.name, description=text, blocking=name in self.blocking,
                                   partitions_def=self.partitions_def)
                    for name, text in self.checks.items()]


def worker_step_asset(step: WorkerStep) -> Any:
    """The Dagster asset of ``step``: ``multi_asset`` with one skippable output in the validator's group and
    backend pool, its upstream assets as inputs, and the shared body :func:`run_worker_step`."""
    from validibot_pipelines.assets.intake import attempt_of

    backend_key = f"{step.validator}_backend"
    out = AssetOut(group_name=step.validator, kinds=step.kinds, is_required=False, description=step.description)

    @multi_asset(name=step.name, outs={step.name: out}, check_specs=step.check_specs(),
                 partitions_def=step.partitions_def, can_subset=True, pool=pool_for(step.validator),
                 ins={name: AssetIn() for name in step.upstream}, required_resource_keys={"settings", backend_key},
                 # The model's spec too (not only through intake, whose data version is the model's checksum):
                 # a changed spec makes this step stale even where only intake was re-materialized.
                 deps=[AssetKey(f"{step.validator}_spec")])
    def _step(context: AssetExecutionContext, config: WorkerStepConfig, **upstream: Any):
        env = StepEnv(settings=context.resources.settings, backend=getattr(context.resources, backend_key),
                      attempt=attempt_of(context), context=context)
        yield from run_worker_step(context, config, upstream, step, env)

    return _step
