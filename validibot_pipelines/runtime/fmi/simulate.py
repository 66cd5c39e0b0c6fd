"""Simulate an FMU with fmpy in a child process with a timeout, and publish the results.

Outputs: last sample per output variable, the full time series as a parquet artifact, FMU facts, timing,
the FMU's own log lines. A crash or a hang of the FMU is the model's fault (failed_validation).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from validibot_pipelines.envelopes import FMISimulationInputs, FMISimulationOutputs, Status, ValidationMetric
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.process import run_child, tail
from validibot_pipelines.storage import get_store


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
        "result_path": str(ctx.workdir / "result.npy"),
    }
    if "input-timeseries" in ctx.files:  # staged and checksum-verified like every input file
        request["input_csv"] = str(ctx.files["input-timeseries"])
    elif inputs.input_timeseries_uri:
        local = ctx.workdir / "input_timeseries.csv"
        get_store(inputs.input_timeseries_uri).download_file(inputs.input_timeseries_uri, local)
        request["input_csv"] = str(local)
    request_path = ctx.workdir / "request.json"
    request_path.write_text(json.dumps(request))
    timeout = min(inputs.simulation_timeout_seconds, ctx.envelope.context.timeout_seconds)
    ctx.log(f"simulating {name} (outputs: {', '.join(outputs)}; timeout {timeout:g} s)")
    child = run_child([sys.executable, "-m", "validibot_pipelines.runtime.fmi.child", str(request_path)],
                      timeout=timeout, cwd=ctx.workdir)
    ctx.output.metrics.append(ValidationMetric(name="execution_seconds", value=round(child.seconds, 4), unit="s"))
    meta_path = ctx.workdir / "child.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if child.timed_out:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("FMU_TIMEOUT", f"{name}: the simulation did not finish within {timeout:g} s and was "
                         "stopped; check the FMU terminates, shorten stop_time or raise the timeout")
        return
    if child.signal_name:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("FMU_CRASHED", f"{name}: the FMU binary crashed the simulation process "
                         f"({child.signal_name}); debug the FMU's native code. stderr: {tail(child.stderr, 5)}")
        return
    if not meta.get("ok"):
        ctx.output.status = Status.FAILED_VALIDATION
        detail = meta.get("error") or tail(child.stderr, 10) or f"exit code {child.returncode}"
        ctx.output.error("FMU_SIMULATION_FAILED", f"{name}: simulation failed: {detail}")
        return
    _publish(ctx, name, md, outputs, meta, child.seconds)


def _publish(ctx: RunContext, name: str, md: Any, outputs: list[str], meta: dict, seconds: float) -> None:
    import numpy as np
    import pyarrow as pa  # pyarrow directly: pandas would add ~0.5 s of import to every worker start
    import pyarrow.parquet as pq

    result = np.load(ctx.workdir / "result.npy", allow_pickle=False)
    table = pa.table({col: np.ascontiguousarray(result[col]) for col in result.dtype.names})
    parquet = ctx.workdir / "timeseries.parquet"
    pq.write_table(table, parquet)
    artifact = ctx.store_artifact(parquet, "timeseries.parquet", "timeseries", "application/vnd.apache.parquet")
    last = {col: _scalar(result[col][-1]) if len(result) else None for col in outputs}
    sim_outputs = FMISimulationOutputs(
        output_values=last, timeseries_uri=artifact.uri, fmu_guid=md.guid or "", fmi_version=md.fmiVersion,
        model_name=md.modelName, execution_seconds=round(seconds, 4),
        simulation_time_reached=meta.get("simulation_time_reached"), fmu_log=meta.get("fmu_log", []),
    )
    ctx.output.outputs = sim_outputs.model_dump(mode="json")
    ctx.output.metrics.extend(ValidationMetric(name=k, value=v) for k, v in last.items())
    ctx.output.status = Status.SUCCESS
    ctx.log(f"simulated {name} to t={sim_outputs.simulation_time_reached}: {last}")
