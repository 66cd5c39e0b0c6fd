"""FMI validator assets: fmu_intake → fmu_probe → fmu_simulation, with asset checks.

* ``fmu_intake``: control-plane checks, canonical copy by checksum. Blocking check ``intake_accepted``.
* ``fmu_probe``: model facts from the isolated worker. Blocking check ``probe_approved`` — an FMU with a
  failed probe is never simulated.
* ``fmu_simulation``: fmpy run on the isolated worker; checks ``simulation_succeeded``, ``cel_assertions``
  (the spec's CEL assertions, one row per assertion in the check's metadata) and ``matches_reference``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from validibot_pipelines.assets.backend_step import StepEnv, WorkerStep, worker_step_asset
from validibot_pipelines.assets.batch import ModelResult
from validibot_pipelines.assets.checks import assertions_check, status_check
from validibot_pipelines.assets.intake import intake_asset
from validibot_pipelines.assets.metadata import frame_table, png_markdown
from validibot_pipelines.envelopes import OutputEnvelope, Status
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.storage import get_store
from validibot_pipelines.validators.fmi import launch as fmi
from validibot_pipelines.validators.fmi.envelopes import ReferenceComparison
from validibot_pipelines.validators.fmi.partitions import fmu_partitions

GROUP = "fmi"

fmu_intake = intake_asset(GROUP, "fmu_intake", partitions_def=fmu_partitions, kinds={"fmi"},
                          fact_keys=("fmi_version", "model_name", "guid"), accepted_means="ZIP, XML and safety checks "
                          "passed; the spec parsed", description="The uploaded FMU, checked in the control plane and "
                          "stored once by checksum.")


def _present_probe(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope,
                   meta: dict[str, Any]) -> ModelResult:
    facts = out.outputs
    if facts:
        variables = facts["variables"]
        meta.update({
            "fmi_version": facts["fmi_version"], "model_name": facts["model_name"], "guid": facts["guid"],
            "interfaces": ", ".join(facts.get("interfaces") or []) or "none",
            "counts": MetadataValue.json(facts["counts"]),
            "default_experiment": MetadataValue.json(facts["default_experiment"]),
            "variables": frame_table(pd.DataFrame(variables).astype(
                {"start": str, **({"dimensions": str} if "dimensions" in variables[0] else {})})
                if variables else pd.DataFrame()),
        })
    return ModelResult(out.model_dump(mode="json"), meta, [status_check("probe_approved", out)])


fmu_probe = worker_step_asset(WorkerStep(
    "fmu_probe", GROUP, fmu_partitions, {"fmi"}, upstream=("fmu_intake",), blocking=("probe_approved",),
    checks={"probe_approved": "fmpy read and validated the model description; an interface offered"},
    launch=lambda record, _up, env: fmi.probe(record, **env.launch_args), present=_present_probe,
    description="Model facts from the isolated worker: variable catalog, DefaultExperiment, fmpy findings."))


def _present_simulation(record: ModelRecord, up: Mapping[str, Any], out: OutputEnvelope,
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
        # Drawn by the worker (worker/plot.py; none if it could not be: an INFO says why). Embedded only as one of
        # the envelope's artifacts, whose place in this bundle and checksum were checked (access.check_output).
        plot = next((a for a in out.artifacts if a.name == "plot.png" and a.uri == sim.get("plot_uri")), None)
        if plot is not None:
            meta["plot"] = png_markdown(get_store(plot.uri).read_bytes(plot.uri), record.file_name)
    results = fmi.check(record, out, probe_out) if out.status == Status.SUCCESS else []
    value = {**out.model_dump(mode="json"), "assertions": [r.model_dump(mode="json") for r in results]}
    checks = [status_check("simulation_succeeded", out), assertions_check(results, out), reference_check(out)]
    return ModelResult(value, meta, checks)


def _launch_simulation(record: ModelRecord, up: Mapping[str, Any],
                       env: StepEnv) -> tuple[OutputEnvelope | None, LaunchRecord]:
    probe_out = OutputEnvelope.model_validate(up["fmu_probe"]) if up.get("fmu_probe") else None
    return fmi.simulate(record, simulation_timeout_seconds=env.settings.simulation_timeout_seconds,
                        probe_out=probe_out, plot=True, **env.launch_args)


def reference_check(out: OutputEnvelope) -> AssetCheckResult:
    """``matches_reference``: the simulation follows the spec's reference result within its tolerance band."""
    comparison = (out.outputs or {}).get("reference")
    if comparison is None:
        described = "no reference result in the spec (add `reference:` to compare)" if out.status == Status.SUCCESS \
            else f"not compared: the worker ended {out.status.value}"
        return AssetCheckResult(check_name="matches_reference", passed=out.status == Status.SUCCESS,
                                severity=AssetCheckSeverity.WARN, description=described,
                                metadata={"compared": False})
    result = ReferenceComparison.model_validate(comparison)
    rows = pd.DataFrame([s.model_dump() for s in result.signals],
                        columns=["name", "samples", "outliers", "fraction_outside", "passed"])
    return AssetCheckResult(
        check_name="matches_reference", passed=result.passed, severity=AssetCheckSeverity.ERROR,
        description=f"{result.file}: {result.summary()}"[:2000],
        metadata={"compared": True, "signals": frame_table(rows), "tolerance": result.tolerance,
                  "max_outliers": result.max_outliers, "missing": MetadataValue.json(result.missing)},
    )


fmu_simulation = worker_step_asset(WorkerStep(
    "fmu_simulation", GROUP, fmu_partitions, {"fmi"}, upstream=("fmu_intake", "fmu_probe"), checks={
        "simulation_succeeded": "the FMU simulated to the stop time without crashing or timing out",
        "cel_assertions": "the spec's CEL assertions over i (inputs), o (outputs), p (probe facts)",
        "matches_reference": "the result stays within the tolerance band of the spec's reference result"},
    launch=_launch_simulation, present=_present_simulation,
    description="The simulation result: last values, the full time series (parquet in the store) and a plot."))

ASSETS = [fmu_intake, fmu_probe, fmu_simulation]
