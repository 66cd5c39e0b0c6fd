"""Run EnergyPlus on a private, normalised copy of the model and publish metrics and artifacts.

The files the model reads are placed beside it, an ``.imf`` is expanded by EPMacro and an epJSON with
HVACTemplate objects converted to IDF first (:mod:`.preprocess`, all in the sandbox).
The user's file is never modified: the worker writes ``run/in.idf`` (or ``in.epJSON``) with Output:SQLite,
the two summary reports, the requested Timestep and output variables, runs the real ``energyplus`` binary
in the sandbox (:mod:`validibot_pipelines.runtime.sandbox`) with a timeout, copies ``eplusout.err``
and ``eplusout.sql`` out of the sandbox's folder (no links, size-capped), reads the metrics from the copy.
success only with return code 0, no fatal error and no error message.
"""

from __future__ import annotations

import json
from pathlib import Path

from validibot_pipelines.envelopes import Severity, Status, ValidationMessage, ValidationMetric
from validibot_pipelines.envelopes.bounds import clip_tail
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.process import tail
from validibot_pipelines.runtime.sandbox import UnsafeResult, copy_result, limit_failure, run_untrusted
from validibot_pipelines.validators.energyplus.envelopes import EnergyPlusInputs, EnergyPlusOutputs
from validibot_pipelines.validators.energyplus.worker import install, preprocess

MAX_ERR_BYTES = 64 * 1024 * 1024
UNITS = {"_kwh": "kWh", "_kwh_m2": "kWh/m2", "_m2": "m2", "_hours": "h", "_w": "W"}


def _unit(name: str) -> str | None:
    for suffix, unit in sorted(UNITS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return unit
    return None


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # older IDFs are latin-1; intake already rejected binary files


def _weather(ctx: RunContext, inputs: EnergyPlusInputs, name: str) -> Path | None:
    if "weather" in ctx.files:
        return ctx.files["weather"]
    found = install.find_shipped_weather(inputs.weather_name) if inputs.weather_name else None
    if found is None:
        shipped = ", ".join(install.shipped_weather_files())
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("WEATHER_NOT_FOUND", f"{name}: weather file {inputs.weather_name!r} is not available to "
                         f"the worker; name a shipped file ({shipped}) or upload the .epw with the model")
    return found


def _prepare(model: Path, inputs: EnergyPlusInputs, rundir: Path) -> tuple[Path, str | None, int | None]:
    """Write the normalised private copy; return its path, the model's Version and its own Timestep."""
    from validibot_pipelines.validators.energyplus.idf import (
        detect_format,
        model_timestep,
        model_version,
        normalise_epjson,
        normalise_idf,
        parse_idf,
    )

    text = _read_text(model)
    rundir.mkdir(parents=True, exist_ok=True)
    if detect_format(text) == "epjson":
        data = json.loads(text)
        target = rundir / "in.epJSON"
        target.write_text(json.dumps(normalise_epjson(data, timestep_per_hour=inputs.timestep_per_hour,
                                                      output_variables=inputs.output_variables), indent=1))
        return target, model_version(data), model_timestep(data)
    target = rundir / "in.idf"
    target.write_text(normalise_idf(text, timestep_per_hour=inputs.timestep_per_hour,
                                    output_variables=inputs.output_variables))
    parsed = parse_idf(text)
    return target, model_version(parsed), model_timestep(parsed)


MAX_SEVERE_MESSAGES = 10  # each one a WARNING; the count is in outputs.severe_count


def timestep_note(name: str, own: int | None, spec: int | None) -> str:
    """The INFO text saying which ``Timestep`` the run used and why (a normalisation the user should see)."""
    from validibot_pipelines.validators.energyplus.idf import DEFAULT_TIMESTEP

    if spec is not None:
        return (f"{name}: ran with the spec's timestep_per_hour {spec}"
                + (f" instead of the model's own Timestep {own}" if own not in (None, spec) else ""))
    if own is None:
        return f"{name}: the model declares no Timestep; ran with {DEFAULT_TIMESTEP} per hour (set timestep_per_hour)"
    return f"{name}: ran with the model's own Timestep {own} per hour"


def run(ctx: RunContext) -> None:
    from validibot_pipelines.validators.energyplus.idf import DEFAULT_TIMESTEP
    from validibot_pipelines.validators.energyplus.worker.metrics import idd_version, parse_err, read_metrics

    name = ctx.envelope.file_with_role("primary-model").name
    inputs = EnergyPlusInputs.model_validate(ctx.envelope.inputs)
    weather = _weather(ctx, inputs, name)
    if weather is None:
        return
    rundir = ctx.workdir / "run"
    rundir.mkdir(parents=True, exist_ok=True)
    source = _preprocessed(ctx, name, rundir)
    if source is None:
        return
    try:
        model, version, own_timestep = _prepare(source, inputs, rundir)
    except ValueError as exc:  # syntax the intake could not see, or a bad timestep
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("EP_MODEL_INVALID", f"{name}: {exc}")
        return
    if model.suffix == ".epJSON" and preprocess.has_hvac_templates(preprocess.read_epjson(model)):
        model = _step(ctx, preprocess.epjson_to_idf(model, rundir, ctx.workdir / "tools", name,
                                                    ctx.envelope.context.limits,
                                                    ctx.envelope.context.timeout_seconds))
        if model is None:
            return
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.INFO, code="EP_HVACTEMPLATE_EXPANDED",
            text=f"{name}: HVACTemplate objects were converted to IDF (ConvertInputFormat) and expanded by "
                 "ExpandObjects before the run"))
    ctx.output.messages.append(ValidationMessage(severity=Severity.INFO, code="EP_TIMESTEP",
                                                 text=timestep_note(name, own_timestep, inputs.timestep_per_hour)))
    engine = install.engine_version()
    timeout = min(inputs.simulation_timeout_seconds, ctx.envelope.context.timeout_seconds)
    per_hour = inputs.timestep_per_hour or own_timestep or DEFAULT_TIMESTEP
    ctx.log(f"EnergyPlus {engine}: {name} with {weather.name} (timestep {per_hour}/h)")
    child = run_untrusted([str(install.binary()), "-w", str(weather), "-d", str(rundir / "out"), "-x", str(model)],
                          scratch=rundir, timeout=timeout, limits=ctx.envelope.context.limits, readonly=[weather])
    trusted = ctx.workdir / "results"
    err_path = _take(rundir, rundir / "out" / "eplusout.err", trusted, MAX_ERR_BYTES, ctx)
    err_text = _read_text(err_path) if err_path else ""
    err = parse_err(err_text)
    sql = _take(rundir, rundir / "out" / "eplusout.sql", trusted, ctx.envelope.context.limits.max_file_bytes, ctx)
    metrics = read_metrics(sql) if sql else {}
    outputs = EnergyPlusOutputs(
        energyplus_version=engine, idd_version=idd_version(), model_version=version,
        version_match=bool(version) and engine.startswith(str(version)), weather_file=weather.name,
        return_code=child.returncode, completed_successfully=bool(err.get("completed_successfully")),
        warning_count=err.get("warning_count", 0), severe_count=err.get("severe_count", 0),
        fatal_count=err.get("fatal_count", 0), metrics=metrics, stdout_tail=tail(child.stdout, 20),
        stderr_tail=clip_tail(tail(child.stderr, 20)), err_tail=clip_tail(tail(err_text, 30)),
        execution_seconds=round(child.seconds, 3),
    )
    if sql:
        outputs.sql_uri = ctx.store_artifact(sql, "eplusout.sql", "simulation-db", "application/vnd.sqlite3").uri
    if err_path:
        outputs.err_uri = ctx.store_artifact(err_path, "eplusout.err", "log", "text/plain").uri
    if inputs.output_variables and sql:
        outputs.timeseries_uri = _timeseries(ctx, sql, inputs.output_variables)
    _verdict(ctx, name, child, outputs, err, timeout, fail_on_severe=inputs.fail_on_severe)
    ctx.output.outputs = outputs.model_dump(mode="json")
    ctx.output.metrics.extend(ValidationMetric(name=k, value=v, unit=_unit(k)) for k, v in metrics.items())
    for key in ("warning_count", "severe_count", "fatal_count", "return_code"):
        ctx.output.metrics.append(ValidationMetric(name=key, value=getattr(outputs, key)))
    ctx.output.metrics.append(ValidationMetric(name="execution_seconds", value=outputs.execution_seconds, unit="s"))
    ctx.log(f"EnergyPlus finished {name}: rc={child.returncode}, {outputs.warning_count} warnings, "
            f"{outputs.severe_count} severe, {outputs.fatal_count} fatal; status {ctx.output.status.value}")


def _preprocessed(ctx: RunContext, name: str, rundir: Path) -> Path | None:
    """The model text to normalise: the upload itself, or for an ``.imf`` EPMacro's expansion of it (checked
    again for unsafe objects); the files it reads are placed beside it first. ``None`` when a step failed."""
    if _step(ctx, preprocess.place_model_files(ctx.files, rundir, name)) is None:
        return None
    upload = ctx.files["primary-model"]
    if upload.suffix.lower() != ".imf":
        return upload
    expanded = _step(ctx, preprocess.expand_macros(
        upload, rundir, ctx.workdir / "tools", ctx.workdir / "results", name, ctx.envelope.context.limits,
        ctx.envelope.context.timeout_seconds, MAX_ERR_BYTES))
    if expanded is None:
        return None
    from validibot_pipelines.validators.energyplus.intake import expanded_model_problems

    problems = expanded_model_problems(_read_text(expanded), name)
    if problems:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.messages.extend(problems)
        return None
    ctx.output.messages.append(ValidationMessage(severity=Severity.INFO, code="EP_MACRO_EXPANDED",
                                                 text=f"{name}: expanded by EPMacro (##include and macros) "
                                                      "before the run"))
    return expanded


def _step(ctx: RunContext, step: preprocess.Step) -> Path | None:
    """A pre-processing step's path, or ``None`` after recording its failure (the model's, or the system's)."""
    if step.path is not None:
        return step.path
    ctx.output.status = Status.FAILED_RUNTIME if step.runtime else Status.FAILED_VALIDATION
    ctx.output.error(step.code, step.text)
    return None


def _take(scratch: Path, path: Path, trusted: Path, max_bytes: int, ctx: RunContext) -> Path | None:
    """Copy one output file out of the sandbox's folder (no links, size-capped); ``None`` when absent or unsafe."""
    try:
        return copy_result(scratch, path, trusted / path.name, max_bytes)
    except FileNotFoundError:
        return None
    except UnsafeResult as exc:
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.WARNING, code="EP_OUTPUT_UNSAFE", location=path.name,
            text=f"{path.name} left by the EnergyPlus run was not read: {exc}"))
        return None


def _timeseries(ctx: RunContext, sql: Path, variables: list[str]) -> str | None:
    import pyarrow.parquet as pq

    from validibot_pipelines.validators.energyplus.worker.metrics import read_timeseries

    table = read_timeseries(sql, variables)
    found = set(table.column("variable").to_pylist()) if table.num_rows else set()
    for var in variables:
        if var not in found:
            ctx.output.messages.append(ValidationMessage(
                severity=Severity.WARNING, code="EP_OUTPUT_VARIABLE_MISSING", location="validation spec",
                text=f"output variable '{var}' produced no data; check its spelling against the model's .rdd"))
    path = ctx.workdir / "timeseries.parquet"
    pq.write_table(table, path)
    return ctx.store_artifact(path, "timeseries.parquet", "timeseries", "application/vnd.apache.parquet").uri


def _verdict(ctx: RunContext, name: str, child, outputs: EnergyPlusOutputs, err: dict, timeout: float,  # noqa: ANN001
             *, fail_on_severe: bool = False) -> None:
    if child.timed_out:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("EP_TIMEOUT", f"{name}: EnergyPlus did not finish within {timeout:g} s and was stopped; "
                         "shorten the RunPeriod, lower timestep_per_hour or raise the timeout")
        return
    limited = limit_failure(child, "EP", name, who="EnergyPlus running the model")
    if limited:
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error(*limited)
        return
    if child.signal_name:  # EnergyPlus runs the model's own input: a crash on it is the model's to fix
        ctx.output.status = Status.FAILED_VALIDATION
        ctx.output.error("EP_CRASHED", f"{name}: the EnergyPlus process died with {child.signal_name} on this "
                         f"model; simplify the objects named last in eplusout.err. stderr: "
                         f"{clip_tail(tail(child.stderr, 5), 1500)}")
        return
    problems = [*err.get("fatal_messages", []), *err.get("severe_messages", [])]
    if child.returncode != 0 or outputs.fatal_count or not outputs.completed_successfully:
        ctx.output.status = Status.FAILED_VALIDATION
        detail = "; ".join(problems[:5]) or tail(child.stdout + child.stderr, 5) or f"exit code {child.returncode}"
        ctx.output.error("EP_SIMULATION_FAILED", f"{name}: EnergyPlus failed (exit code {child.returncode}, "
                         f"{outputs.fatal_count} fatal, {outputs.severe_count} severe): {detail}",
                         location="eplusout.err")
        return
    # A version mismatch is said once, by intake (EP_VERSION_MISMATCH with its advice); ``version_match`` stays in
    # the outputs for assertions.
    severe = err.get("severe_messages", [])
    if fail_on_severe and (severe or outputs.severe_count):
        # The spec's fail_on_severe: the run finished, but the project counts severe errors as defects.
        ctx.output.status = Status.FAILED_VALIDATION
        detail = "; ".join(severe[:5]) or f"{outputs.severe_count} severe error(s), see eplusout.err"
        ctx.output.error("EP_SEVERE", clip_tail(
            f"{name}: EnergyPlus reported {outputs.severe_count} severe error(s) and the spec sets "
            f"fail_on_severe: {detail}; fix the objects eplusout.err names (or drop fail_on_severe to report "
            "them as warnings)", 1500), location="eplusout.err")
        return
    for text in severe[:MAX_SEVERE_MESSAGES]:
        ctx.output.messages.append(ValidationMessage(
            severity=Severity.WARNING, code="EP_SEVERE", location="eplusout.err",
            text=clip_tail(f"{name}: EnergyPlus reported a severe error: {text}", 1000)))
    ctx.output.status = Status.SUCCESS if not ctx.output.errors else Status.FAILED_VALIDATION
