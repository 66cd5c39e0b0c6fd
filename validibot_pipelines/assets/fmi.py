"""FMI validator assets: fmu_intake → fmu_probe → fmu_simulation, with asset checks.

* ``fmu_intake``: control-plane checks, canonical copy by checksum. Blocking check ``intake_accepted``.
* ``fmu_probe``: model facts from the isolated worker. Blocking check ``probe_approved`` — an FMU with a
  failed probe is never simulated.
* ``fmu_simulation``: fmpy run on the isolated worker; checks ``simulation_succeeded`` and
  ``cel_assertions`` (the spec's CEL assertions, one row per assertion in the check's metadata).
"""


from collections.abc import Mapping
from typing import Any

import pandas as pd
from dagster import AssetCheckSpec, AssetExecutionContext, MetadataValue, ResourceParam, asset

from validibot_pipelines.assets.backend_step import WorkerStepConfig, run_worker_step, worker_asset
from validibot_pipelines.assets.batch import ModelResult
from validibot_pipelines.assets.checks import assertions_check, plot_markdown, reference_check, status_check
from validibot_pipelines.assets.intake import IntakeConfig, attempt_of, run_intake
from validibot_pipelines.assets.metadata import frame_table
from validibot_pipelines.assets.specs import SPEC_SOURCES
from validibot_pipelines.envelopes import OutputEnvelope, Status
from validibot_pipelines.orchestration import fmi
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.partitions import fmu_partitions
from validibot_pipelines.resources.backends.base import ComputeBackend, LaunchRecord
from validibot_pipelines.resources.settings import ValidibotSettings

GROUP = "fmi"
VALIDATOR = "fmi"


@asset(
    partitions_def=fmu_partitions, group_name=GROUP, kinds={"fmi"}, deps=[SPEC_SOURCES[GROUP]],
    check_specs=[AssetCheckSpec("intake_accepted", asset="fmu_intake", blocking=True,
                                description="ZIP, XML and safety checks passed; the spec parsed")],
)
def fmu_intake(context: AssetExecutionContext, config: IntakeConfig, settings: ValidibotSettings):
    """The uploaded FMU, checked in the control plane and stored once by checksum."""
    yield from run_intake(context, config, settings, GROUP, fact_keys=("fmi_version", "model_name", "guid"))


@worker_asset(
    "fmu_probe", validator=VALIDATOR, partitions_def=fmu_partitions, group=GROUP, kinds={"fmi"},
    check_specs=[AssetCheckSpec("probe_approved", asset="fmu_probe", blocking=True,
                                description="fmpy read and validated the model description; co-simulation")],
)
def fmu_probe(context: AssetExecutionContext, config: WorkerStepConfig, fmu_intake: dict[str, Any],
              settings: ValidibotSettings, fmi_backend: ResourceParam[ComputeBackend]):
    """Model facts from the isolated worker: variable catalog, DefaultExperiment, fmpy validation findings."""

    def present(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope,
                meta: dict[str, Any]) -> ModelResult:
        facts = out.outputs
        if facts:
            meta.update({
                "fmi_version": facts["fmi_version"], "model_name": facts["model_name"], "guid": facts["guid"],
                "interfaces": ", ".join(facts.get("interfaces") or []) or "none",
                "counts": MetadataValue.json(facts["counts"]),
                "default_experiment": MetadataValue.json(facts["default_experiment"]),
                "variables": frame_table(pd.DataFrame(facts["variables"]).astype(
                    {"start": str, **({"dimensions": str} if "dimensions" in facts["variables"][0] else {})})
                    if facts["variables"] else pd.DataFrame()),
            })
        return ModelResult(out.model_dump(mode="json"), meta, [status_check("probe_approved", out)])

    def launch(record: ModelRecord, _up: Mapping[str, Any]) -> tuple[OutputEnvelope | None, LaunchRecord]:
        return fmi.probe(
            record, store_uri=settings.store_uri, backend=fmi_backend, attempt=attempt_of(context),
            timeout_seconds=settings.worker_timeout_seconds, context=context)

    upstream = {"fmu_intake": fmu_intake}
    yield from run_worker_step(context, config, upstream, "fmu_intake", launch, present)


@worker_asset(
    "fmu_simulation", validator=VALIDATOR, partitions_def=fmu_partitions, group=GROUP, kinds={"fmi"},
    check_specs=[
        AssetCheckSpec("simulation_succeeded", asset="fmu_simulation",
                       description="the FMU simulated to the stop time without crashing or timing out"),
        AssetCheckSpec("cel_assertions", asset="fmu_simulation",
                       description="the spec's CEL assertions over i (inputs), o (outputs), p (probe facts)"),
        AssetCheckSpec("matches_reference", asset="fmu_simulation",
                       description="the result stays within the tolerance band of the spec's reference result"),
    ],
)
def fmu_simulation(context: AssetExecutionContext, config: WorkerStepConfig, fmu_intake: dict[str, Any],
                   fmu_probe: dict[str, Any], settings: ValidibotSettings, fmi_backend: ResourceParam[ComputeBackend]):
    """The simulation result: last values, the full time series (parquet in the store) and a plot."""

    def present(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope,
                meta: dict[str, Any]) -> ModelResult:
        probe_out = OutputEnvelope.model_validate(up["fmu_probe"])
        sim = out.outputs
        if sim:
            meta["output_values"] = frame_table(pd.DataFrame(
                [{"variable": k, "value": str(v)} for k, v in sim["output_values"].items()]))
            meta["simulation_time_reached"] = MetadataValue.float(sim["simulation_time_reached"] or 0.0)
            meta["timeseries_uri"] = MetadataValue.url(sim["timeseries_uri"])
            meta["fmu_guid"] = sim["fmu_guid"]
            meta["interface"] = sim.get("interface", "co_simulation") + (
                f" ({sim['solver']})" if sim.get("solver") else "")
            if sim.get("not_recorded"):
                meta["not_recorded"] = ", ".join(sim["not_recorded"])
            if sim.get("build_log"):
                meta["build_log"] = MetadataValue.md(f"```\n{sim['build_log'][-3000:]}\n```")
            reference = next((r.uri for r in record.resources if r.role == "reference"), None)
            meta["plot"] = plot_markdown(sim["timeseries_uri"], record.file_name, reference)
        results = fmi.check(record, out, probe_out) if out.status == Status.SUCCESS else []
        value = {**out.model_dump(mode="json"), "assertions": [r.model_dump(mode="json") for r in results]}
        checks = [status_check("simulation_succeeded", out), assertions_check(results, out), reference_check(out)]
        return ModelResult(value, meta, checks)

    def launch(record: ModelRecord, _up: Mapping[str, Any]) -> tuple[OutputEnvelope | None, LaunchRecord]:
        return fmi.simulate(
            record, store_uri=settings.store_uri, backend=fmi_backend, attempt=attempt_of(context),
            simulation_timeout_seconds=settings.simulation_timeout_seconds,
            timeout_seconds=settings.worker_timeout_seconds, context=context)

    upstream = {"fmu_intake": fmu_intake, "fmu_probe": fmu_probe}
    yield from run_worker_step(context, config, upstream, "fmu_intake", launch, present)
