"""FMI validator assets: fmu_intake → fmu_probe → fmu_simulation, with asset checks.

* ``fmu_intake``: control-plane checks, canonical copy by checksum. Blocking check ``intake_accepted``.
* ``fmu_probe``: model facts from the isolated worker. Blocking check ``probe_approved`` — an FMU with a
  failed probe is never simulated.
* ``fmu_simulation``: fmpy run on the isolated worker; checks ``simulation_succeeded`` and
  ``cel_assertions`` (the spec's CEL assertions, one row per assertion in the check's metadata).
"""


import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from validibot_pipelines.assets.metadata import envelope_metadata, frame_table, launch_metadata, png_markdown
from validibot_pipelines.assets.plots import timeseries_png
from validibot_pipelines.envelopes import OutputEnvelope, Status
from validibot_pipelines.orchestration import fmi
from validibot_pipelines.orchestration.models import ModelRecord, intake, load_record
from validibot_pipelines.partitions import fmu_partitions
from validibot_pipelines.resources.backends.local import LocalSubprocessBackend
from validibot_pipelines.resources.settings import ValidibotSettings
from validibot_pipelines.storage import get_store

GROUP = "fmi"


class FmuIntakeConfig(Config):
    """Set by the upload sensor. Left empty (schedules, backfills) the stored canonical copy is re-used."""

    source_uri: str = ""
    spec_uri: str = ""


def _attempt(context: AssetExecutionContext) -> str:
    return context.run.run_id.split("-")[0]


@asset(
    partitions_def=fmu_partitions, group_name=GROUP, kinds={"fmi"},
    check_specs=[AssetCheckSpec("intake_accepted", asset="fmu_intake", blocking=True,
                                description="ZIP, XML and safety checks passed; the spec parsed")],
)
def fmu_intake(context: AssetExecutionContext, config: FmuIntakeConfig, settings: ValidibotSettings):
    """The uploaded FMU, checked in the control plane and stored once by checksum."""
    sha = context.partition_key
    if config.source_uri:
        record = intake(config.source_uri, store_uri=settings.store_uri, spec_uri=config.spec_uri or None,
                        expected_sha256=sha, limits=settings.fmu_limits())
    else:
        try:
            record = load_record(settings.store_uri, sha)
        except FileNotFoundError as exc:
            raise Failure(description=str(exc)) from None
    facts = record.facts
    yield Output(record.model_dump(mode="json"), metadata={
        "status": record.status.value,
        "file_name": record.file_name,
        "sha256": record.sha256,
        "size_bytes": record.size_bytes,
        "source_uri": MetadataValue.url(record.source_uri),
        "canonical_uri": MetadataValue.url(record.canonical_uri) if record.canonical_uri else "not stored",
        "fmi_version": str(facts.get("fmi_version", "")),
        "model_name": str(facts.get("model_name", "")),
        "assertions": len((record.spec or {}).get("assertions", [])),
    })
    errors = [f"[{m.code}] {m.text}" for m in record.findings if m.severity.value == "ERROR"]
    yield AssetCheckResult(
        check_name="intake_accepted", passed=record.accepted, severity=AssetCheckSeverity.ERROR,
        description=" ".join(errors)[:2000] or "accepted",
        metadata={"status": record.status.value, "errors": MetadataValue.json(errors)},
    )


@asset(
    partitions_def=fmu_partitions, group_name=GROUP, kinds={"fmi"},
    check_specs=[AssetCheckSpec("probe_approved", asset="fmu_probe", blocking=True,
                                description="fmpy read and validated the model description; co-simulation")],
)
def fmu_probe(context: AssetExecutionContext, fmu_intake: dict[str, Any], settings: ValidibotSettings,
              fmi_backend: LocalSubprocessBackend):
    """Model facts from the isolated worker: variable catalog, DefaultExperiment, fmpy validation findings."""
    record = ModelRecord.model_validate(fmu_intake)
    out, launch = fmi.probe(record, store_uri=settings.store_uri, backend=fmi_backend, attempt=_attempt(context),
                            timeout_seconds=settings.worker_timeout_seconds, context=context)
    meta = {**envelope_metadata(out), **launch_metadata(launch)}
    facts = out.outputs
    if facts:
        meta.update({
            "fmi_version": facts["fmi_version"], "model_name": facts["model_name"], "guid": facts["guid"],
            "counts": MetadataValue.json(facts["counts"]),
            "default_experiment": MetadataValue.json(facts["default_experiment"]),
            "variables": frame_table(pd.DataFrame(facts["variables"]).astype({"start": str})),
        })
    yield Output(out.model_dump(mode="json"), metadata=meta)
    yield _status_check("probe_approved", out)


@asset(
    partitions_def=fmu_partitions, group_name=GROUP, kinds={"fmi"},
    check_specs=[
        AssetCheckSpec("simulation_succeeded", asset="fmu_simulation",
                       description="the FMU simulated to the stop time without crashing or timing out"),
        AssetCheckSpec("cel_assertions", asset="fmu_simulation",
                       description="the spec's CEL assertions over i (inputs), o (outputs), p (probe facts)"),
    ],
)
def fmu_simulation(context: AssetExecutionContext, fmu_intake: dict[str, Any], fmu_probe: dict[str, Any],
                   settings: ValidibotSettings, fmi_backend: LocalSubprocessBackend):
    """The simulation result: last values, the full time series (parquet in the store) and a plot."""
    record = ModelRecord.model_validate(fmu_intake)
    probe_out = OutputEnvelope.model_validate(fmu_probe)
    out, launch = fmi.simulate(
        record, store_uri=settings.store_uri, backend=fmi_backend, attempt=_attempt(context),
        simulation_timeout_seconds=settings.simulation_timeout_seconds,
        timeout_seconds=settings.worker_timeout_seconds, context=context,
    )
    meta = {**envelope_metadata(out), **launch_metadata(launch)}
    sim = out.outputs
    if sim:
        meta["output_values"] = frame_table(pd.DataFrame(
            [{"variable": k, "value": str(v)} for k, v in sim["output_values"].items()]))
        meta["simulation_time_reached"] = MetadataValue.float(sim["simulation_time_reached"] or 0.0)
        meta["timeseries_uri"] = MetadataValue.url(sim["timeseries_uri"])
        meta["fmu_guid"] = sim["fmu_guid"]
        png = _plot(sim["timeseries_uri"], record.file_name)
        meta["plot"] = png_markdown(png, record.file_name)
    results = fmi.check(record, out, probe_out) if out.status == Status.SUCCESS else []
    yield Output({**out.model_dump(mode="json"), "assertions": [r.model_dump(mode="json") for r in results]},
                 metadata=meta)
    yield _status_check("simulation_succeeded", out)
    yield _assertions_check(results, out)


def _plot(timeseries_uri: str, title: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "ts.parquet"
        get_store(timeseries_uri).download_file(timeseries_uri, local)
        return timeseries_png(pd.read_parquet(local), title)


def _status_check(name: str, out: OutputEnvelope) -> AssetCheckResult:
    errors = [f"[{m.code}] {m.text}" for m in out.errors]
    return AssetCheckResult(
        check_name=name, passed=out.status == Status.SUCCESS, severity=AssetCheckSeverity.ERROR,
        description=" ".join(errors)[:2000] or out.status.value,
        metadata={"status": out.status.value, "errors": MetadataValue.json(errors)},
    )


def _assertions_check(results: list, out: OutputEnvelope) -> AssetCheckResult:
    if out.status != Status.SUCCESS:
        return AssetCheckResult(check_name="cel_assertions", passed=False, severity=AssetCheckSeverity.ERROR,
                                description=f"not evaluated: the simulation ended {out.status.value}")
    rows = pd.DataFrame([{"name": r.name, "passed": r.passed, "severity": str(r.severity), "expr": r.expr,
                          "message": r.message or "", "error": r.error or ""} for r in results],
                        columns=["name", "passed", "severity", "expr", "message", "error"])
    status = fmi.assertion_status(results)
    failed = [r for r in results if not r.passed]
    return AssetCheckResult(
        check_name="cel_assertions", passed=not failed,
        severity=AssetCheckSeverity.ERROR if status != Status.SUCCESS else AssetCheckSeverity.WARN,
        description=(f"{len(results) - len(failed)}/{len(results)} assertions passed" if results
                     else "no assertions in the spec"),
        metadata={"assertions": frame_table(rows), "passed": len(results) - len(failed), "failed": len(failed)},
    )
