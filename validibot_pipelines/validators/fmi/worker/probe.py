"""Probe an FMU: read its model description with fmpy, run ``validate_fmu``, list the variable catalog.

Runs in the isolated backend, and there in the sandbox (design: "an XML schema check is untrusted"), even
though it only parses XML: the control plane never hands an untrusted archive to a native-code parser, and
the worker never parses it outside the sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage, ValidationMetric
from validibot_pipelines.envelopes.bounds import clip, clip_tail
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.process import tail
from validibot_pipelines.runtime.sandbox import UnsafeResult, limit_failure, read_result
from validibot_pipelines.runtime.sandbox.warm import run_python, workspace
from validibot_pipelines.validators.fmi.envelopes import DefaultExperiment, FMIProbeOutputs, FMIVariable
from validibot_pipelines.validators.fmi.worker.child import CHILD_MODULE

PROBE_TIMEOUT_SECONDS = 300
MAX_ANSWER_BYTES = 32 * 1024 * 1024

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
            unit=_unit(v), start=_start(v), dimensions=[int(d) for d in v.shape] if v.shape else None,
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
        "structural_parameters": sum(v.causality == "structuralParameter" for v in variables),
        "arrays": sum(v.dimensions is not None for v in variables),
    }
    offered = {"co_simulation": md.coSimulation is not None, "model_exchange": md.modelExchange is not None,
               "scheduled_execution": getattr(md, "scheduledExecution", None) is not None}
    facts = FMIProbeOutputs(
        fmi_version=md.fmiVersion, model_name=md.modelName, guid=md.guid or getattr(md, "instantiationToken", ""),
        supports_co_simulation=offered["co_simulation"], supports_model_exchange=offered["model_exchange"],
        supports_scheduled_execution=offered["scheduled_execution"],
        interfaces=[name for name, yes in offered.items() if yes], variables=variables,
        default_experiment=experiment, counts=counts,
        approved=(offered["co_simulation"] or offered["model_exchange"]) and not problems,
    )
    return facts, problems


def _float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def run(ctx: RunContext) -> None:
    """Probe in the sandbox: fmpy parses and schema-checks the untrusted model description there, and only
    the facts come back, size-bounded and checked against :class:`FMIProbeOutputs` before they are used."""
    fmu = ctx.files["fmu"]
    name = ctx.envelope.file_with_role("fmu").name
    try:
        facts, problems = _sandboxed_probe(ctx, fmu)
    except ProbeFailed as exc:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error(exc.code, f"{name}: {exc}")
        return
    for problem in problems:
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.ERROR, code="FMU_VALIDATION", text=f"{name}: {problem}", location="modelDescription.xml"))
    if not (facts.supports_co_simulation or facts.supports_model_exchange):
        offered = ", ".join(facts.interfaces) or "none"
        ctx.output.error("FMU_INTERFACE_UNSUPPORTED", f"{name}: the FMU offers only {offered}; Scheduled Execution "
                         "needs a scheduler that activates the model's clocked partitions, which fmpy does not "
                         "provide, so it cannot be simulated here — export it with Co-Simulation or Model Exchange")
    ctx.output.outputs = facts.model_dump(mode="json")
    ctx.output.metrics = [ValidationMetric(name=f"{k}_count", value=v) for k, v in facts.counts.items()]
    ctx.output.status = Status.SUCCESS if facts.approved else Status.FAILED_VALIDATION
    ctx.log(f"probe {name}: FMI {facts.fmi_version} '{facts.model_name}', {facts.counts}, "
            f"{len(problems)} problem(s)")


class ProbeFailed(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


def _sandboxed_probe(ctx: RunContext, fmu: Path) -> tuple[FMIProbeOutputs, list[str]]:
    space = workspace(ctx.workdir, "probe-sandbox")
    scratch = space.scratch
    request = scratch / "request.json"
    request.write_text(json.dumps({"mode": "probe", "fmu": str(space.add_input(fmu))}))
    timeout = min(PROBE_TIMEOUT_SECONDS, ctx.envelope.context.timeout_seconds)
    child = run_python(CHILD_MODULE, [str(request)], workspace=space, timeout=timeout,
                       limits=ctx.envelope.context.limits)
    if child.timed_out:
        raise ProbeFailed("FMU_PROBE_TIMEOUT", f"reading the model description took longer than {timeout:g} s; "
                          "export the FMU again with a smaller modelDescription.xml")
    if limited := limit_failure(child, "FMU", "", who="reading the model description"):
        raise ProbeFailed(limited[0], limited[1].removeprefix(": "))
    try:
        answer = json.loads(read_result(scratch, scratch / "child.json", MAX_ANSWER_BYTES))
    except (FileNotFoundError, UnsafeResult, ValueError) as exc:
        detail = clip_tail(tail(child.stderr, 5), 1500) or f"exit code {child.returncode}"
        raise ProbeFailed("FMU_UNREADABLE", f"fmpy could not read the model description ({exc}; {detail}); "
                          "export the FMU again with a standards-conformant tool") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = clip(str(answer.get("error") if isinstance(answer, dict) else answer), 2000)
        raise ProbeFailed("FMU_UNREADABLE", f"fmpy cannot read the model description ({error}); "
                          "export the FMU again with a standards-conformant tool")
    try:
        facts = FMIProbeOutputs.model_validate(answer["facts"])
        problems = [clip(str(p)) for p in answer.get("problems", [])]
    except (ValidationError, KeyError, TypeError) as exc:
        raise ProbeFailed("FMU_UNREADABLE", f"the probe returned malformed facts ({clip(str(exc), 500)}); "
                          "export the FMU again with a standards-conformant tool") from None
    return facts, problems
