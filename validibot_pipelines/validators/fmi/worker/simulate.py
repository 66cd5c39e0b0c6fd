"""Simulate an FMU with fmpy (Co-Simulation, or Model Exchange with CVode/Euler) in a sandboxed child with a
timeout, and publish the results.

Outputs: last sample per output variable, the full time series as a parquet artifact, FMU facts, timing,
the FMU's own log lines. A crash or a hang of the FMU is the model's fault (failed_validation).

The FMU runs in the sandbox; this (trusted) side reads what it left — ``child.json`` and ``result.npy`` — with
size bounds and shape checks, and writes every word of the output envelope itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage, ValidationMetric
from validibot_pipelines.envelopes.bounds import clip, clip_tail
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.process import tail
from validibot_pipelines.runtime.sandbox import SandboxResult, UnsafeResult, limit_failure
from validibot_pipelines.runtime.sandbox.warm import run_python, workspace
from validibot_pipelines.storage import get_store
from validibot_pipelines.validators.fmi.envelopes import FMISimulationInputs, FMISimulationOutputs
from validibot_pipelines.validators.fmi.worker.child import CHILD_MODULE, UNRECORDED_TYPES
from validibot_pipelines.validators.fmi.worker.reference import ReferenceInvalid, compare, read_reference
from validibot_pipelines.validators.fmi.worker.results import (
    child_meta,
    expected_columns,
    last_values,
    load_result,
    unrecorded_values,
    write_parquet,
)

#: What this runner imports on first use (fmpy parses the description here; pyarrow writes the time series): a
#: worker session imports them ahead (runtime/session.py).
PRELOAD = ("fmpy", "fmpy.model_description", "pyarrow", "pyarrow.parquet")


def _spec_problems(name: str, inputs: FMISimulationInputs, md: Any) -> list[str]:
    known = {v.name: v for v in md.modelVariables}
    outputs_known = sorted(v.name for v in md.modelVariables if v.causality == "output")
    problems = []
    for var in inputs.output_variables or []:
        if var not in known:
            problems.append(f"{name}: output variable '{var}' does not exist in the FMU; "
                            f"use one of: {', '.join(outputs_known) or '(no outputs)'}")
    settable = sorted(v.name for v in md.modelVariables if v.causality in {"input", "parameter"})
    for var in inputs.input_values:
        if var not in known:
            problems.append(f"{name}: input '{var}' does not exist in the FMU; settable: {', '.join(settable)}")
        elif known[var].causality not in {"input", "parameter"}:
            problems.append(f"{name}: '{var}' has causality {known[var].causality} and cannot be set; "
                            f"settable: {', '.join(settable)}")
    return problems


def run(ctx: RunContext) -> None:
    from fmpy import read_model_description

    fmu = ctx.files["fmu"]
    name = ctx.envelope.file_with_role("fmu").name
    inputs = FMISimulationInputs.model_validate(ctx.envelope.inputs)
    # fmpy (lxml) parses the model description here, in the trusted worker: intake already parsed these exact
    # bytes (checksum-verified on staging) with defusedxml, so no entity or DTD trick reaches this parser.
    md = read_model_description(str(fmu), validate=False)
    problems = _spec_problems(name, inputs, md)
    if problems:
        ctx.output.status = Status.FAILED_VALIDATION
        for problem in problems:
            ctx.output.error("SPEC_UNKNOWN_VARIABLE", problem, location="validation spec")
        return
    sim = inputs.simulation
    try:
        interface = choose_interface(name, md, sim.interface)
    except ValueError as exc:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("FMU_INTERFACE_NOT_OFFERED", str(exc), location="validation spec")
        return
    solver = (sim.solver or "cvode") if interface == "model_exchange" else None
    outputs = inputs.output_variables or [v.name for v in md.modelVariables if v.causality == "output"]
    types = {v.name: v.type for v in md.modelVariables}
    recorded = [o for o in outputs if types.get(o) not in UNRECORDED_TYPES]
    space = workspace(ctx.workdir)
    scratch = space.scratch
    request: dict[str, Any] = {
        "fmu": str(space.add_input(fmu)), "start_time": sim.start_time, "stop_time": sim.stop_time,
        "step_size": sim.step_size, "tolerance": sim.tolerance, "start_values": inputs.input_values,
        "outputs": outputs, "interface": interface, "solver": solver,
    }
    if "input-timeseries" in ctx.files:  # staged and checksum-verified like every input file
        request["input_csv"] = str(space.add_input(ctx.files["input-timeseries"]))
    elif inputs.input_timeseries_uri:
        local = ctx.workdir / "input_timeseries.csv"
        get_store(inputs.input_timeseries_uri).download_file(inputs.input_timeseries_uri, local)
        request["input_csv"] = str(space.add_input(local))
    request["result_path"] = str(scratch / "result.npy")
    request_path = scratch / "request.json"
    request_path.write_text(json.dumps(request))
    timeout = min(inputs.simulation_timeout_seconds, ctx.envelope.context.timeout_seconds)
    how = interface.replace("_", "-") + (f", {solver}" if solver else "")
    ctx.log(f"simulating {name} ({how}; outputs: {', '.join(outputs)}; timeout {timeout:g} s)")
    child = run_python(CHILD_MODULE, [str(request_path)], workspace=space, timeout=timeout,
                       limits=ctx.envelope.context.limits)
    ctx.output.metrics.append(ValidationMetric(name="execution_seconds", value=round(child.seconds, 4), unit="s"))
    failure = _failure(name, child, timeout, scratch)
    if failure is None:
        try:
            meta = child_meta(scratch)
            if not meta["ok"]:
                raise ValueError(meta.get("error") or "the process reported failure without a reason")
            result = load_result(scratch, expected_columns(md, recorded), meta)
        except (UnsafeResult, ValueError, TypeError, FileNotFoundError) as exc:
            failure = ("FMU_RESULT_INVALID", f"{name}: the simulation process left no usable result ({exc}); "
                       "the FMU's code interfered with the simulation — debug its native code")
    if failure is not None:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error(*failure)
        return
    values = {**last_values(result, recorded), **unrecorded_values(meta, [o for o in outputs if o not in recorded])}
    run_facts: dict[str, Any] = {"interface": interface, "solver": solver, "build_log": meta.get("build_log")}
    reference = None
    if inputs.reference is not None and "reference" in ctx.files:
        try:
            reference = read_reference(ctx.files["reference"])
            run_facts["reference"] = compare(result, reference, ctx.files["reference"].name, inputs.reference)
        except ReferenceInvalid as exc:
            ctx.output.status = Status.FAILED_VALIDATION
            ctx.output.error("REFERENCE_INVALID", f"{name}: {ctx.files['reference'].name}: {exc}",
                             location="validation spec")
            return
    if inputs.plot:
        run_facts["plot_uri"] = _plot(ctx, name, result, reference)
    _publish(ctx, name, md, outputs, values, meta, result, child.seconds, sim.stop_time or _default_stop(md),
             run_facts)


def _plot(ctx: RunContext, name: str, result: Any, reference: Any) -> str | None:
    """Draw the result plot (``plot.py``) into the bundle; its URI, or None with an INFO message saying why.

    A plot that cannot be drawn is not the model's fault and changes no verdict: the time series is still there.
    """
    from validibot_pipelines.validators.fmi.worker.plot import timeseries_png

    try:
        png = timeseries_png(result, name, reference)
    except Exception as exc:  # noqa: BLE001 - matplotlib raises many kinds; the verdict must not depend on them
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.INFO, code="FMU_PLOT_NOT_DRAWN", location="simulation",
            text=f"{name}: the result plot could not be drawn ({type(exc).__name__}: {clip(str(exc), 300)}); "
                 "the time series artifact holds the same data"))
        return None
    path = ctx.workdir / "plot.png"
    path.write_bytes(png)
    return ctx.store_artifact(path, "plot.png", "plot", "image/png").uri


def choose_interface(name: str, md: Any, wanted: str | None) -> str:
    """The FMI interface to simulate: the spec's, else Co-Simulation when offered, else Model Exchange."""
    offered = {"co_simulation": md.coSimulation is not None, "model_exchange": md.modelExchange is not None}
    if wanted is not None:
        if not offered[wanted]:
            have = ", ".join(k for k, v in offered.items() if v) or "neither"
            raise ValueError(f"{name}: the spec asks for interface {wanted}, but the FMU offers {have}; set "
                             f"simulation.interface to one it offers (or leave it out)")
        return wanted
    if offered["co_simulation"]:
        return "co_simulation"
    if offered["model_exchange"]:
        return "model_exchange"
    raise ValueError(f"{name}: the FMU offers neither Co-Simulation nor Model Exchange; export it with one of them")


def _failure(name: str, child: SandboxResult, timeout: float, scratch: Path) -> tuple[str, str] | None:
    """Why the sandboxed simulation failed, as (code, text), or None when it claims success (checked later)."""
    if child.timed_out:
        return ("FMU_TIMEOUT", f"{name}: the simulation did not finish within {timeout:g} s and was stopped; "
                "check the FMU terminates, shorten stop_time or raise the timeout")
    limited = limit_failure(child, "FMU", name, who="the FMU's simulation process")
    if limited:
        return limited
    if child.signal_name:
        return ("FMU_CRASHED", f"{name}: the FMU binary crashed the simulation process ({child.signal_name}); "
                f"debug the FMU's native code. stderr: {clip_tail(tail(child.stderr, 5), 1500)}")
    if child.returncode != 0:
        try:
            meta = child_meta(scratch)
            error = meta.get("error")
            if meta.get("build_failed"):
                return ("FMU_SOURCE_BUILD_FAILED", f"{name}: {error}; fix the FMU's sources or ship a binary for "
                        "x86_64 Linux")
        except (UnsafeResult, ValueError, FileNotFoundError):
            error = None
        detail = error or clip_tail(tail(child.stderr, 10), 2000) or "no output"
        return ("FMU_SIMULATION_FAILED", f"{name}: simulation failed (exit code {child.returncode}): {detail}")
    return None


def _default_stop(md: Any) -> float | None:
    de = md.defaultExperiment
    try:
        return float(de.stopTime) if de is not None and de.stopTime not in (None, "") else None
    except ValueError:
        return None


def _publish(ctx: RunContext, name: str, md: Any, outputs: list[str], values: dict[str, Any], meta: dict,
             result: Any, seconds: float, stop_time: float | None, run_facts: dict[str, Any]) -> None:
    parquet = ctx.workdir / "timeseries.parquet"
    write_parquet(result, parquet)
    artifact = ctx.store_artifact(parquet, "timeseries.parquet", "timeseries", "application/vnd.apache.parquet")
    unrecorded = [o for o in outputs if o in meta["unrecorded"]]
    sim_outputs = FMISimulationOutputs(
        output_values=values, timeseries_uri=artifact.uri, fmu_guid=md.guid or "", fmi_version=md.fmiVersion,
        model_name=md.modelName, execution_seconds=round(seconds, 4),
        simulation_time_reached=float(result["time"][-1]) if len(result) else None, fmu_log=meta["fmu_log"],
        interface=run_facts["interface"], solver=run_facts["solver"], not_recorded=unrecorded,
        build_log=clip(str(run_facts["build_log"]), 8000) if run_facts.get("build_log") else None,
        reference=run_facts.get("reference"), plot_uri=run_facts.get("plot_uri"),
    )
    for output in unrecorded:
        got = "its last value is reported" if values.get(output) is not None else "the FMU did not give its value"
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.INFO, code="FMU_OUTPUT_NOT_RECORDED", location=output,
            text=f"{name}: output '{output}' has a type fmpy does not record over time; {got}"))
    reached = sim_outputs.simulation_time_reached
    if stop_time is not None and (reached is None or reached < stop_time - 1e-6 * max(1.0, abs(stop_time))):
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.WARNING, code="FMU_STOPPED_EARLY", location="simulation",
            text=f"{name}: the simulation ended at t={reached} before stop_time {stop_time:g}; the FMU asked to "
                 "terminate early — check its events or stop_time"))
    ctx.output.outputs = sim_outputs.model_dump(mode="json")
    ctx.output.metrics.extend(ValidationMetric(name=k, value=v) for k, v in values.items()
                              if isinstance(v, bool | int | float | str) or v is None)
    ctx.output.status = Status.SUCCESS
    ctx.log(f"simulated {name} to t={sim_outputs.simulation_time_reached} ({run_facts['interface']}): "
            f"{clip(str(values), 1000)}")
