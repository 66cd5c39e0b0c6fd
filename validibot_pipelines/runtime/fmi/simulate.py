"""Simulate an FMU with fmpy in a child process with a timeout, and publish the results.

Outputs: last sample per output variable, the full time series as a parquet artifact, FMU facts, timing,
the FMU's own log lines. A crash or a hang of the FMU is the model's fault (failed_validation).

The FMU runs in the sandbox; this (trusted) side reads what it left — ``child.json`` and ``result.npy`` — with
size bounds and shape checks, and writes every word of the output envelope itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from validibot_pipelines.envelopes import (
    FMISimulationInputs,
    FMISimulationOutputs,
    Severity,
    Status,
    ValidationMessage,
    ValidationMetric,
)
from validibot_pipelines.envelopes.bounds import clip, clip_tail
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.process import tail
from validibot_pipelines.runtime.sandbox import (
    SandboxResult,
    UnsafeResult,
    copy_result,
    limit_failure,
    read_result,
    run_untrusted,
)
from validibot_pipelines.storage import get_store

MAX_META_BYTES = 4 * 1024 * 1024
MAX_RESULT_BYTES = 512 * 1024 * 1024
MAX_LOG_LINES = 200


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


def _scalar(value: Any) -> Any:
    item = value.item() if hasattr(value, "item") else value
    return item.decode() if isinstance(item, bytes) else item


def run(ctx: RunContext) -> None:
    from fmpy import read_model_description

    fmu = ctx.files["fmu"]
    name = ctx.envelope.file_with_role("fmu").name
    inputs = FMISimulationInputs.model_validate(ctx.envelope.inputs)
    md = read_model_description(str(fmu), validate=False)
    problems = _spec_problems(name, inputs, md)
    if problems:
        ctx.output.status = Status.FAILED_VALIDATION
        for problem in problems:
            ctx.output.error("SPEC_UNKNOWN_VARIABLE", problem, location="validation spec")
        return
    outputs = inputs.output_variables or [v.name for v in md.modelVariables if v.causality == "output"]
    sim = inputs.simulation
    request: dict[str, Any] = {
        "fmu": str(fmu), "start_time": sim.start_time, "stop_time": sim.stop_time, "step_size": sim.step_size,
        "tolerance": sim.tolerance, "start_values": inputs.input_values, "outputs": outputs,
    }
    if "input-timeseries" in ctx.files:  # staged and checksum-verified like every input file
        request["input_csv"] = str(ctx.files["input-timeseries"])
    elif inputs.input_timeseries_uri:
        local = ctx.workdir / "input_timeseries.csv"
        get_store(inputs.input_timeseries_uri).download_file(inputs.input_timeseries_uri, local)
        request["input_csv"] = str(local)
    scratch = ctx.workdir / "sandbox"
    scratch.mkdir()
    request["result_path"] = str(scratch / "result.npy")
    request_path = scratch / "request.json"
    request_path.write_text(json.dumps(request))
    timeout = min(inputs.simulation_timeout_seconds, ctx.envelope.context.timeout_seconds)
    ctx.log(f"simulating {name} (outputs: {', '.join(outputs)}; timeout {timeout:g} s)")
    readonly = [Path(request["fmu"])] + ([Path(request["input_csv"])] if request.get("input_csv") else [])
    child = run_untrusted([sys.executable, "-m", "validibot_pipelines.runtime.fmi.child", str(request_path)],
                          scratch=scratch, timeout=timeout, limits=ctx.envelope.context.limits, readonly=readonly)
    ctx.output.metrics.append(ValidationMetric(name="execution_seconds", value=round(child.seconds, 4), unit="s"))
    failure = _failure(name, child, timeout, scratch)
    if failure is None:
        try:
            meta = _child_meta(scratch)
            if not meta["ok"]:
                raise ValueError(meta.get("error") or "the process reported failure without a reason")
            result = _load_result(scratch, outputs, meta)
        except (UnsafeResult, ValueError, FileNotFoundError) as exc:
            failure = ("FMU_RESULT_INVALID", f"{name}: the simulation process left no usable result ({exc}); "
                       "the FMU's code interfered with the simulation — debug its native code")
    if failure is not None:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error(*failure)
        return
    _publish(ctx, name, md, outputs, meta, result, child.seconds, sim.stop_time or _default_stop(md))


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
            error = _child_meta(scratch).get("error")
        except (UnsafeResult, ValueError, FileNotFoundError):
            error = None
        detail = error or clip_tail(tail(child.stderr, 10), 2000) or "no output"
        return ("FMU_SIMULATION_FAILED", f"{name}: simulation failed (exit code {child.returncode}): {detail}")
    return None


def _child_meta(scratch: Path) -> dict[str, Any]:
    """``child.json``, size-bounded and shape-checked: a dict with ``ok``, an optional error and log lines."""
    meta = json.loads(read_result(scratch, scratch / "child.json", MAX_META_BYTES))
    if not isinstance(meta, dict) or not isinstance(meta.get("ok"), bool):
        raise ValueError("child.json is not a result record")
    log = meta.get("fmu_log", [])
    meta["fmu_log"] = [clip(str(line), 1000) for line in log[:MAX_LOG_LINES]] if isinstance(log, list) else []
    if meta.get("error") is not None:
        meta["error"] = clip(str(meta["error"]), 4000)
    return meta


def _load_result(scratch: Path, outputs: list[str], meta: dict[str, Any]) -> Any:
    """The time series the child left, checked: a plain structured array with time and every output."""
    import numpy as np

    path = scratch / "result.npy"
    try:
        local = copy_result(scratch, path, scratch.parent / "result.npy", MAX_RESULT_BYTES)
    except UnsafeResult as exc:
        if "bytes, over" in str(exc):
            raise ValueError(f"{exc}; raise step_size or name fewer output_variables") from None
        raise
    result = np.load(local, allow_pickle=False)
    names = result.dtype.names or ()
    missing = [col for col in ["time", *outputs] if col not in names]
    if missing or result.ndim != 1:
        raise ValueError(f"result.npy lacks columns {', '.join(missing) or '(bad shape)'}")
    if len(result) and np.any(np.diff(result["time"]) < 0):
        raise ValueError("result.npy's time column goes backwards")
    reached = float(result["time"][-1]) if len(result) else None
    claimed = meta.get("simulation_time_reached")
    drift = abs(claimed - reached) if isinstance(claimed, int | float) else None
    if reached is not None and (drift is None or drift > 1e-9 * max(1, abs(reached))):
        raise ValueError(f"the process claimed to reach t={claimed!r} but its time series ends at t={reached}")
    return result


def _default_stop(md: Any) -> float | None:
    de = md.defaultExperiment
    try:
        return float(de.stopTime) if de is not None and de.stopTime not in (None, "") else None
    except ValueError:
        return None


def _publish(ctx: RunContext, name: str, md: Any, outputs: list[str], meta: dict, result: Any, seconds: float,
             stop_time: float | None) -> None:
    import numpy as np
    import pyarrow as pa  # pyarrow directly: pandas would add ~0.5 s of import to every worker start
    import pyarrow.parquet as pq

    table = pa.table({col: np.ascontiguousarray(result[col]) for col in result.dtype.names})
    parquet = ctx.workdir / "timeseries.parquet"
    pq.write_table(table, parquet)
    artifact = ctx.store_artifact(parquet, "timeseries.parquet", "timeseries", "application/vnd.apache.parquet")
    last = {col: _scalar(result[col][-1]) if len(result) else None for col in outputs}
    sim_outputs = FMISimulationOutputs(
        output_values=last, timeseries_uri=artifact.uri, fmu_guid=md.guid or "", fmi_version=md.fmiVersion,
        model_name=md.modelName, execution_seconds=round(seconds, 4),
        simulation_time_reached=float(result["time"][-1]) if len(result) else None, fmu_log=meta["fmu_log"],
    )
    reached = sim_outputs.simulation_time_reached
    if stop_time is not None and (reached is None or reached < stop_time - 1e-6 * max(1.0, abs(stop_time))):
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.WARNING, code="FMU_STOPPED_EARLY", location="simulation",
            text=f"{name}: the simulation ended at t={reached} before stop_time {stop_time:g}; the FMU asked to "
                 "terminate early — check its events or stop_time"))
    ctx.output.outputs = sim_outputs.model_dump(mode="json")
    ctx.output.metrics.extend(ValidationMetric(name=k, value=v) for k, v in last.items())
    ctx.output.status = Status.SUCCESS
    ctx.log(f"simulated {name} to t={sim_outputs.simulation_time_reached}: {last}")
