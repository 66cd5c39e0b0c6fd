"""EnergyPlus validator assets: energyplus_model → energyplus_simulation, with asset checks.

* ``energyplus_model``: control-plane intake (text sanity, size cap, unsafe-object scan, IDF vs epJSON,
  weather resolution), canonical copy by checksum. Blocking check ``intake_accepted``.
* ``energyplus_simulation``: the real EnergyPlus binary on the isolated worker; metrics as a table,
  eplusout.sql / eplusout.err (and requested output variables as parquet) as stored artifacts; checks
  ``simulation_succeeded`` and ``cel_assertions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import MetadataValue

from validibot_pipelines.assets.backend_step import StepEnv, WorkerStep, worker_step_asset
from validibot_pipelines.assets.batch import ModelResult
from validibot_pipelines.assets.checks import assertions_check, status_check
from validibot_pipelines.assets.intake import intake_asset
from validibot_pipelines.assets.metadata import metrics_table
from validibot_pipelines.envelopes import OutputEnvelope, Status
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.validators.energyplus import launch as energyplus
from validibot_pipelines.validators.energyplus.partitions import energyplus_partitions

GROUP = "energyplus"

energyplus_model = intake_asset(GROUP, "energyplus_model", partitions_def=energyplus_partitions, kinds={"energyplus"},
                                fact_keys=("format", "model_version", "zone_count"), description="The uploaded IDF / "
                                "epJSON model, checked in the control plane and stored once by checksum.",
                                accepted_means="text, size and unsafe-object checks passed; spec and weather resolved")


def _present(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope, meta: dict[str, Any]) -> ModelResult:
    sim = out.outputs
    if sim:
        meta["metrics"] = metrics_table(out)
        meta.update({
            "energyplus_version": sim["energyplus_version"], "model_version": str(sim["model_version"]),
            "version_match": sim["version_match"], "weather_file": sim["weather_file"],
            "warnings": sim["warning_count"], "severe_errors": sim["severe_count"],
            "fatal_errors": sim["fatal_count"],
            **{m.name: MetadataValue.float(float(m.value)) for m in out.metrics
               if m.name == "site_eui_kwh_m2" and isinstance(m.value, int | float)},
            "err_tail": MetadataValue.md(f"```\n{sim['err_tail'][-3000:]}\n```"),
        })
        for key in ("sql_uri", "err_uri", "timeseries_uri"):
            if sim.get(key):
                meta[key] = MetadataValue.url(sim[key])
    results = energyplus.check(record, out) if out.status == Status.SUCCESS else []
    value = {**out.model_dump(mode="json"), "assertions": [r.model_dump(mode="json") for r in results]}
    return ModelResult(value, meta, [status_check("simulation_succeeded", out), assertions_check(results, out)])


def _launch(record: ModelRecord, _up: Mapping[str, Any], env: StepEnv) -> tuple[OutputEnvelope | None, LaunchRecord]:
    timeout = env.settings.energyplus_timeout_seconds
    return energyplus.simulate(record, simulation_timeout_seconds=timeout, **env.launch_args)


energyplus_simulation = worker_step_asset(WorkerStep(
    "energyplus_simulation", GROUP, energyplus_partitions, {"energyplus"}, upstream=("energyplus_model",),
    checks={"simulation_succeeded": "EnergyPlus exited 0 with no fatal error",
            "cel_assertions": "the spec's CEL assertions over o (metrics), i (inputs), p (model facts)"},
    launch=_launch, present=_present,
    description="An annual EnergyPlus run of a normalised private copy: metrics, counts, sql and err artifacts."))

ASSETS = [energyplus_model, energyplus_simulation]
