"""EnergyPlus validator assets: energyplus_model → energyplus_simulation, with asset checks.

* ``energyplus_model``: control-plane intake (text sanity, size cap, unsafe-object scan, IDF vs epJSON,
  weather resolution), canonical copy by checksum. Blocking check ``intake_accepted``.
* ``energyplus_simulation``: the real EnergyPlus binary on the isolated worker; metrics as a table,
  eplusout.sql / eplusout.err (and requested output variables as parquet) as stored artifacts; checks
  ``simulation_succeeded`` and ``cel_assertions``.
"""

from collections.abc import Mapping
from typing import Any

from dagster import AssetCheckSpec, AssetExecutionContext, MetadataValue, ResourceParam, asset

from validibot_pipelines.assets.backend_step import WorkerStepConfig, run_worker_step, worker_asset
from validibot_pipelines.assets.batch import ModelResult
from validibot_pipelines.assets.checks import assertions_check, status_check
from validibot_pipelines.assets.intake import IntakeConfig, attempt_of, run_intake
from validibot_pipelines.assets.metadata import metrics_table
from validibot_pipelines.assets.specs import SPEC_SOURCES
from validibot_pipelines.envelopes import OutputEnvelope, Status
from validibot_pipelines.orchestration import energyplus
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.partitions import energyplus_partitions
from validibot_pipelines.resources.backends.base import ComputeBackend, LaunchRecord
from validibot_pipelines.resources.settings import ValidibotSettings

GROUP = "energyplus"
VALIDATOR = "energyplus"


@asset(
    partitions_def=energyplus_partitions, group_name=GROUP, kinds={"energyplus"}, deps=[SPEC_SOURCES[GROUP]],
    check_specs=[AssetCheckSpec("intake_accepted", asset="energyplus_model", blocking=True,
                                description="text, size and unsafe-object checks passed; spec and weather resolved")],
)
def energyplus_model(context: AssetExecutionContext, config: IntakeConfig, settings: ValidibotSettings):
    """The uploaded IDF / epJSON model, checked in the control plane and stored once by checksum."""
    yield from run_intake(context, config, settings, GROUP, fact_keys=("format", "model_version", "zone_count"))


@worker_asset(
    "energyplus_simulation", validator=VALIDATOR, partitions_def=energyplus_partitions, group=GROUP,
    kinds={"energyplus"}, check_specs=[
        AssetCheckSpec("simulation_succeeded", asset="energyplus_simulation",
                       description="EnergyPlus exited 0 with no fatal error"),
        AssetCheckSpec("cel_assertions", asset="energyplus_simulation",
                       description="the spec's CEL assertions over o (metrics), i (inputs), p (model facts)"),
    ],
)
def energyplus_simulation(context: AssetExecutionContext, config: WorkerStepConfig, energyplus_model: dict[str, Any],
                          settings: ValidibotSettings, energyplus_backend: ResourceParam[ComputeBackend]):
    """An annual EnergyPlus run of a normalised private copy: metrics, counts, sql and err artifacts."""

    def present(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope,
                meta: dict[str, Any]) -> ModelResult:
        sim = out.outputs
        if sim:
            meta["metrics"] = metrics_table(out)
            meta.update({
                "energyplus_version": sim["energyplus_version"], "model_version": str(sim["model_version"]),
                "version_match": sim["version_match"], "weather_file": sim["weather_file"],
                "warnings": sim["warning_count"], "severe_errors": sim["severe_count"],
                "fatal_errors": sim["fatal_count"],
                "err_tail": MetadataValue.md(f"```\n{sim['err_tail'][-3000:]}\n```"),
            })
            for key in ("sql_uri", "err_uri", "timeseries_uri"):
                if sim.get(key):
                    meta[key] = MetadataValue.url(sim[key])
        results = energyplus.check(record, out) if out.status == Status.SUCCESS else []
        value = {**out.model_dump(mode="json"), "assertions": [r.model_dump(mode="json") for r in results]}
        return ModelResult(value, meta, [status_check("simulation_succeeded", out), assertions_check(results, out)])

    def launch(record: ModelRecord, _up: Mapping[str, Any]) -> tuple[OutputEnvelope | None, LaunchRecord]:
        return energyplus.simulate(
            record, store_uri=settings.store_uri, backend=energyplus_backend, attempt=attempt_of(context),
            simulation_timeout_seconds=settings.energyplus_timeout_seconds,
            timeout_seconds=settings.worker_timeout_seconds, context=context)

    upstream = {"energyplus_model": energyplus_model}
    yield from run_worker_step(context, config, upstream, "energyplus_model", launch, present)
