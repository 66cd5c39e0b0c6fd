"""Probe an FMU: read its model description with fmpy, run ``validate_fmu``, list the variable catalog.

Runs in the isolated backend even though it only parses XML, so the control plane never hands an
untrusted archive to a native-code-capable library.
"""

from __future__ import annotations

from typing import Any

from validibot_pipelines.envelopes import FMIProbeOutputs, Severity, Status, ValidationMessage, ValidationMetric
from validibot_pipelines.envelopes.fmi import DefaultExperiment, FMIVariable
from validibot_pipelines.runtime.context import RunContext

_VALUE_TYPES = {"Real", "Integer", "Boolean", "String", "Enumeration", "Float64", "Float32", "Int8", "UInt8",
                "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Binary", "Clock"}


def _unit(variable: Any) -> str | None:
    if getattr(variable, "unit", None):
        return variable.unit
    declared = getattr(variable, "declaredType", None)
    return getattr(declared, "unit", None) if declared is not None else None


def _start(variable: Any) -> Any:
    start = getattr(variable, "start", None)
    if start is None:
        return None
    if variable.type in {"Real", "Float64", "Float32"}:
        try:
            return float(start)
        except (TypeError, ValueError):
            return start
    if variable.type in {"Integer", "Enumeration"} or variable.type.startswith(("Int", "UInt")):
        try:
            return int(start)
        except (TypeError, ValueError):
            return start
    if variable.type == "Boolean":
        return str(start).lower() in {"true", "1"}
    return start


def probe_facts(path: str) -> tuple[FMIProbeOutputs, list[str]]:
    """Model facts and fmpy's validation problems for one FMU file."""
    from fmpy import read_model_description
    from fmpy.validation import validate_fmu

    problems = validate_fmu(path)
    md = read_model_description(path, validate=False)
    variables = [
        FMIVariable(
            name=v.name, causality=v.causality or "local", variability=v.variability,
            value_reference=int(v.valueReference), value_type=v.type if v.type in _VALUE_TYPES else "Real",
            unit=_unit(v), start=_start(v),
        )
        for v in md.modelVariables
    ]
    de = md.defaultExperiment
    experiment = DefaultExperiment(
        start_time=_float(de.startTime) if de else None, stop_time=_float(de.stopTime) if de else None,
        step_size=_float(de.stepSize) if de else None, tolerance=_float(de.tolerance) if de else None,
    )
    counts = {
        "variables": len(variables),
        "inputs": sum(v.causality == "input" for v in variables),
        "outputs": sum(v.causality == "output" for v in variables),
        "parameters": sum(v.causality in {"parameter", "calculatedParameter"} for v in variables),
    }
    supports_cs = md.coSimulation is not None
    facts = FMIProbeOutputs(
        fmi_version=md.fmiVersion, model_name=md.modelName, guid=md.guid or getattr(md, "instantiationToken", ""),
        supports_co_simulation=supports_cs, variables=variables, default_experiment=experiment, counts=counts,
        approved=supports_cs and not problems,
    )
    return facts, problems


def _float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def run(ctx: RunContext) -> None:
    fmu = ctx.files["fmu"]
    name = ctx.envelope.file_with_role("fmu").name
    try:
        facts, problems = probe_facts(str(fmu))
    except Exception as exc:  # fmpy rejects the model description: the model's fault
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("FMU_UNREADABLE", f"{name}: fmpy cannot read the model description ({exc}); "
                         "export the FMU again with a standards-conformant tool")
        return
    for problem in problems:
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.ERROR, code="FMU_VALIDATION", text=f"{name}: {problem}", location="modelDescription.xml"))
    if not facts.supports_co_simulation:
        ctx.output.error("FMU_NO_COSIMULATION", f"{name}: the FMU does not support co-simulation; "
                         "export it with the Co-Simulation interface")
    ctx.output.outputs = facts.model_dump(mode="json")
    ctx.output.metrics = [ValidationMetric(name=f"{k}_count", value=v) for k, v in facts.counts.items()]
    ctx.output.status = Status.SUCCESS if facts.approved else Status.FAILED_VALIDATION
    ctx.log(f"probe {name}: FMI {facts.fmi_version} '{facts.model_name}', {facts.counts}, "
            f"{len(problems)} problem(s)")
