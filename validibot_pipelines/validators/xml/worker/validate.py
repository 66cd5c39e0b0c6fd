"""Validate an XML model against an XSD schema: lxml runs in the sandbox, the verdict is built here.

The trusted side never parses the untrusted model or schema itself. It copies them into a scratch folder, runs
:mod:`.child` there under :func:`~validibot_pipelines.runtime.sandbox.run_untrusted` (timeout and sandbox
limits), reads back ``result.json`` through :func:`~validibot_pipelines.runtime.sandbox.read_result`
(no links, size-capped) and checks it against :class:`ChildAnswer` before anything reaches the envelope: a
result the model forged is ``XML_RESULT_INVALID``, not a verdict.

Schemas: the files staged with role ``schema`` (the main XSD named ``inputs.schema_name`` plus the XSDs it
includes or imports, side by side), or a built-in: ``fmi2``/``fmi3`` are fmpy's shipped copies of the FMI
standard's schemas, found without importing fmpy.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from validibot_pipelines.envelopes import InputFileItem, Severity, Status, ValidationMessage, ValidationMetric
from validibot_pipelines.envelopes.bounds import clip, clip_tail
from validibot_pipelines.runtime.context import RunContext
from validibot_pipelines.runtime.process import tail
from validibot_pipelines.runtime.sandbox import SandboxResult, UnsafeResult, limit_failure, read_result, run_untrusted
from validibot_pipelines.validators.xml.envelopes import (
    BUILTIN_SCHEMAS,
    MAX_FINDING_CHARS,
    XMLFinding,
    XMLInputs,
    XMLOutputs,
)

MODEL_ROLE = "primary-model"
SCHEMA_ROLE = "schema"
CHILD_MODULE = "validibot_pipelines.validators.xml.worker.child"
#: result.json at its largest: 1,000 findings (``max_findings``' cap) of 500-character messages and paths,
#: in UTF-8, plus the counts; anything bigger was not written by the real child.
MAX_RESULT_BYTES = 8 * 1024 * 1024
#: Built-in schema -> (folder under fmpy/schema, main XSD in it).
FMPY_SCHEMAS = {"fmi2": ("fmi2", "fmi2ModelDescription.xsd"), "fmi3": ("fmi3", "fmi3ModelDescription.xsd")}


class ChildAnswer(BaseModel):
    """What the sandboxed child may say; anything else (extra keys, wrong types, inconsistent counts) is forged."""

    model_config = ConfigDict(extra="forbid", strict=True)

    well_formed: bool
    schema_ok: bool
    schema_error: str | None = Field(max_length=10_000)
    root_element: str | None = Field(max_length=2000)
    namespace: str | None = Field(max_length=2000)
    element_count: int = Field(ge=0)
    error_count: int = Field(ge=0)
    warning_count: int = Field(ge=0)
    errors: list[XMLFinding]
    truncated: bool


class XMLFailed(Exception):
    """The run ends without a verdict on the model's content: ``code`` and the sentence for the envelope."""

    def __init__(self, code: str, text: str, status: Status = Status.FAILED_VALIDATION) -> None:
        super().__init__(text)
        self.code, self.status = code, status


def child_command(scratch: Path) -> list[str]:
    """The sandboxed command; a function so tests can swap in a hostile child."""
    return [sys.executable, "-m", CHILD_MODULE, str(scratch)]


def run(ctx: RunContext) -> None:
    """Validate the ``primary-model`` file against the schema the inputs name and set the output envelope."""
    inputs = XMLInputs.model_validate(ctx.envelope.inputs)
    name = ctx.envelope.file_with_role(MODEL_ROLE).name
    scratch = ctx.workdir / "xml-sandbox"
    try:
        main = _stage(ctx, inputs, scratch, name)
        scratch = scratch.resolve()  # the sandbox binds the resolved path; the child must be given that one
        timeout = min(inputs.timeout_seconds, ctx.envelope.context.timeout_seconds)
        ctx.log(f"XML: validating {name} against {inputs.schema_name} ({inputs.validation_mode})")
        child = run_untrusted(child_command(scratch), scratch=scratch, timeout=timeout,
                              limits=ctx.envelope.context.limits,
                              readonly=[scratch / "model.xml", scratch / "schema", scratch / "request.json"])
        answer = _consistent(_answer(child, scratch, name, inputs.schema_name, timeout), inputs, name)
    except XMLFailed as exc:
        ctx.output.status = exc.status
        ctx.output.error(exc.code, str(exc))
        return
    outputs = _verdict(ctx, inputs, name, main, answer, child.seconds)
    ctx.output.outputs = outputs.model_dump(mode="json")
    for key in ("error_count", "warning_count", "element_count"):
        ctx.output.metrics.append(ValidationMetric(name=key, value=getattr(outputs, key)))
    ctx.output.metrics.append(ValidationMetric(name="execution_seconds", value=outputs.execution_seconds, unit="s"))
    ctx.log(f"XML: {name}: {outputs.error_count} error(s), {outputs.warning_count} warning(s), "
            f"{outputs.element_count} elements; status {ctx.output.status.value}")


def _stage(ctx: RunContext, inputs: XMLInputs, scratch: Path, name: str) -> str:
    """Copy the model and every schema file into the scratch folder; return the main schema's file name."""
    schema_dir = scratch / "schema"
    schema_dir.mkdir(parents=True)
    uploaded = [item for item in [*ctx.envelope.input_files, *ctx.envelope.resource_files]
                if item.role == SCHEMA_ROLE]
    if inputs.schema_name in BUILTIN_SCHEMAS and not any(i.name == inputs.schema_name for i in uploaded):
        folder, main = _builtin(inputs.schema_name)
        for xsd in sorted(folder.glob("*.xsd")):
            shutil.copyfile(xsd, schema_dir / xsd.name)
    else:
        if not any(item.name == inputs.schema_name for item in uploaded):
            sent = ", ".join(sorted(i.name for i in uploaded)) or "none"
            raise XMLFailed("XML_SCHEMA_MISSING", f"{name}: the schema '{inputs.schema_name}' was not sent to the "
                            f"validator (schema files sent: {sent}); upload {inputs.schema_name} next to the model "
                            f"or set xsd: in the validation spec to an uploaded schema or a built-in one "
                            f"({', '.join(BUILTIN_SCHEMAS)})")
        for item in uploaded:
            shutil.copyfile(_staged(ctx, item), schema_dir / item.name)
        main = inputs.schema_name
    shutil.copyfile(ctx.files[MODEL_ROLE], scratch / "model.xml")
    (scratch / "request.json").write_text(json.dumps({"model": "model.xml", "schema_dir": "schema", "schema": main,
                                                      "max_findings": inputs.max_findings}))
    return main


def _staged(ctx: RunContext, item: InputFileItem) -> Path:
    """Where the entrypoint staged ``item``: ``files`` holds one path per role, the rest sit beside it by name."""
    by_role = ctx.files.get(item.role)
    if by_role is not None and by_role.name == item.name:
        return by_role
    return ctx.workdir / "inputs" / item.name  # the layout of runtime.entrypoint._stage_inputs


def builtin_schema_dir(name: str) -> Path | None:
    """fmpy's folder of ``name``'s XSDs, located through its import spec (fmpy itself is never imported)."""
    spec = importlib.util.find_spec("fmpy")
    folder_name, main = FMPY_SCHEMAS[name]
    for root in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(root) / "schema" / folder_name
        if (folder / main).is_file():
            return folder
    return None


def _builtin(name: str) -> tuple[Path, str]:
    folder = builtin_schema_dir(name)
    if folder is None:  # the worker image lacks fmpy: the system's fault, not the model's
        raise XMLFailed("XML_BUILTIN_SCHEMA_UNAVAILABLE", f"the built-in schema '{name}' needs fmpy's schema files, "
                        "which this worker does not have; install fmpy in the worker image",
                        status=Status.FAILED_RUNTIME)
    return folder, FMPY_SCHEMAS[name][1]


def _answer(child: SandboxResult, scratch: Path, name: str, schema: str, timeout: float) -> ChildAnswer:
    """The child's result, checked; every way the child can fail becomes an :class:`XMLFailed`."""
    if child.timed_out:
        raise XMLFailed("XML_TIMEOUT", f"{name}: validating against {schema} took longer than {timeout:g} s and was "
                        "stopped; simplify the model or the schema, or raise the deployment's xml_timeout_seconds")
    if limited := limit_failure(child, "XML", name, who="the XML schema validation"):
        raise XMLFailed(*limited)
    detail = clip_tail(tail(child.stderr, 5), 1500) or "no output"
    if child.returncode != 0:
        how = f"died with {child.signal_name}" if child.signal_name else f"exited with code {child.returncode}"
        raise XMLFailed("XML_VALIDATOR_CRASHED", f"{name}: the XML validator {how} on this model and schema "
                        f"({detail}); check both are plain XML / XSD files and validate again")
    try:
        raw = read_result(scratch, scratch / "result.json", MAX_RESULT_BYTES)
    except FileNotFoundError:
        raise XMLFailed("XML_VALIDATOR_CRASHED", f"{name}: the XML validator ended without a result ({detail}); "
                        "check the model and the schema are plain XML / XSD files and validate again") from None
    except UnsafeResult as exc:
        raise XMLFailed("XML_RESULT_INVALID", f"{name}: the validator's result was not read: {exc}") from None
    try:
        answer = ChildAnswer.model_validate_json(raw)
    except ValidationError as exc:
        raise XMLFailed("XML_RESULT_INVALID", f"{name}: the sandboxed validator returned a malformed result "
                        f"({clip(str(exc), 500)}); the model or schema may be trying to subvert the validator — "
                        "check both files") from None
    if len(answer.errors) > answer.error_count + answer.warning_count:
        raise XMLFailed("XML_RESULT_INVALID", f"{name}: the sandboxed validator listed more findings than it "
                        "counted; the model or schema may be trying to subvert the validator — check both files")
    return answer


def _consistent(answer: ChildAnswer, inputs: XMLInputs, name: str) -> ChildAnswer:
    """Refuse an answer that contradicts itself or intake's own parse of the model (a forged verdict).

    The child runs the model's and schema's input through libxml2, so a compromised child could write any
    ``result.json``; what it cannot know is what intake saw. An answer naming another root element, namespace
    or element count than intake's parse, or whose counts and flags disagree, is ``XML_RESULT_INVALID``.
    """
    problems = []
    total = answer.error_count + answer.warning_count
    if answer.well_formed != bool(answer.root_element) or (not answer.well_formed and answer.error_count == 0):
        problems.append("its well-formedness contradicts its root element or error count")
    if answer.schema_ok == bool(answer.schema_error):
        problems.append("its schema verdict contradicts its schema error")
    if answer.truncated != (total > len(answer.errors)) or len(answer.errors) > inputs.max_findings:
        problems.append("it lists a different number of findings than it counted")
    seen = inputs.expected
    if seen is not None and answer.well_formed and (
            clip(answer.root_element or "", MAX_FINDING_CHARS) != seen.root_element
            or (clip(answer.namespace, MAX_FINDING_CHARS) if answer.namespace else None) != seen.namespace
            or answer.element_count != seen.element_count):
        problems.append(f"it describes another document (root {clip(answer.root_element or '', 80)!r}, "
                        f"{answer.element_count} elements) than intake read ({seen.root_element!r}, "
                        f"{seen.element_count} elements)")
    if problems:
        raise XMLFailed("XML_RESULT_INVALID", f"{name}: the sandboxed validator's result is not credible: "
                        f"{'; '.join(problems)}; the model or schema may be trying to subvert the validator — "
                        "check both files")
    return answer


def _verdict(ctx: RunContext, inputs: XMLInputs, name: str, main: str, answer: ChildAnswer,
             seconds: float) -> XMLOutputs:
    """Messages and status from the checked answer. strict: violations fail; lenient: they are warnings.
    A model that is not well-formed, or a schema that does not compile, fails in both modes."""
    findings = answer.errors[: inputs.max_findings]
    truncated = answer.truncated or len(answer.errors) > len(findings)
    strict = inputs.validation_mode == "strict"
    failed = not (answer.well_formed and answer.schema_ok)
    code = "XML_SCHEMA_VIOLATION" if answer.well_formed else "XML_NOT_WELL_FORMED"
    violation = Severity.ERROR if strict or not answer.well_formed else Severity.WARNING
    for finding in findings:
        where = f"line {finding.line}, column {finding.column}"
        severity = violation if finding.level == "error" else Severity.WARNING
        ctx.output.messages.append(ValidationMessage(severity=severity, code=code, location=where,
                                                     text=f"{name}: {where}: {finding.message}"))
    if truncated:
        listed = len(findings)
        total = answer.error_count + answer.warning_count
        ctx.output.messages.append(ValidationMessage(
            severity=violation, code="XML_FINDINGS_TRUNCATED",
            text=f"{name}: {total - listed:,} more problem(s) not listed (only the first {listed} are); fix the ones "
                 "listed and validate again (all are counted in outputs.error_count)"))
    if not answer.schema_ok:
        why = (answer.schema_error or "libxml2 gave no reason").rstrip(". ")
        ctx.output.error("XML_SCHEMA_INVALID", f"{main}: the schema cannot be used: {why}; fix the schema, or "
                         "upload the schema files it includes next to it, and validate again")
    if failed or (strict and answer.error_count):
        ctx.output.status = Status.FAILED_VALIDATION
    else:
        ctx.output.status = Status.SUCCESS
    return XMLOutputs(
        root_element=answer.root_element or "", namespace=answer.namespace, schema_name=inputs.schema_name,
        validation_mode=inputs.validation_mode, valid=not failed and answer.error_count == 0,
        error_count=answer.error_count, warning_count=answer.warning_count, element_count=answer.element_count,
        findings=findings, findings_truncated=truncated, execution_seconds=round(seconds, 3))
