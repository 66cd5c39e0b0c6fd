"""Base input/output envelopes (schema versions ``validibot.input.v1`` / ``validibot.output.v1``).

Field names follow shared/design.md so every backend and worker speaks the same contract. The typed
``inputs``/``outputs`` payloads live per validator (see :mod:`validibot_pipelines.validators.fmi.envelopes`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

INPUT_SCHEMA = "validibot.input.v1"
OUTPUT_SCHEMA = "validibot.output.v1"



class EnvelopeError(ValueError):
    """An envelope could not be parsed; the message names the envelope and every bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Status(StrEnum):
    SUCCESS = "success"
    FAILED_VALIDATION = "failed_validation"  # the model's fault
    FAILED_RUNTIME = "failed_runtime"  # the system's fault
    CANCELLED = "cancelled"


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class ValidatorRef(_Strict):
    id: str
    type: str
    version: str


class OrgRef(_Strict):
    id: str = "local"
    name: str = "local"


class WorkflowRef(_Strict):
    id: str = "adhoc"
    step_id: str = "1"
    step_name: str = "validate"


def check_leaf_name(name: str) -> str:
    """Reject anything but a plain file name, so a worker can never write outside its directory."""
    if not name or name in {".", ".."} or any(c in name for c in "/\\\x00"):
        raise ValueError(f"{name!r} is not a safe file name (no '/', '\\', NUL, '.' or '..')")
    return name


class InputFileItem(_Strict):
    name: str
    mime_type: str
    role: str
    uri: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    _name = field_validator("name")(classmethod(lambda cls, v: check_leaf_name(v)))


GIB = 1024**3


class SandboxLimits(_Strict):
    """Resource limits on every sandboxed (untrusted) process of a launch: the model's own code.

    Part of the envelope, so every backend's worker applies the same limits and a changed limit is a new
    request (no replay of a result computed under other limits). ``cpu_seconds`` ``None`` means twice the
    step's timeout: CPU time is a backstop against a model that escapes the wall-clock timeout by burning
    CPU in many threads, not a second timeout.
    """

    memory_bytes: int = Field(default=4 * GIB, gt=0, description="address space (RLIMIT_AS) per process")
    max_processes: int = Field(default=256, gt=0, description="processes and threads in the sandbox")
    max_file_bytes: int = Field(default=2 * GIB, gt=0, description="largest file a sandboxed process may write")
    max_open_files: int = Field(default=1024, gt=16, description="open file descriptors per process")
    cpu_seconds: int | None = Field(default=None, gt=0, description="CPU time per process; None: 2 x timeout")


class ExecutionContext(_Strict):
    callback_id: str
    callback_url: str | None = None
    skip_callback: bool = True
    execution_bundle_uri: str
    expected_output_uri: str
    timeout_seconds: int = Field(default=3600, gt=0)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    tags: dict[str, str] = Field(default_factory=dict)


class InputEnvelope(_Strict):
    schema_version: Literal["validibot.input.v1"] = INPUT_SCHEMA
    run_id: str = Field(min_length=1)
    validator: ValidatorRef
    org: OrgRef = Field(default_factory=OrgRef)
    workflow: WorkflowRef = Field(default_factory=WorkflowRef)
    input_files: list[InputFileItem] = Field(default_factory=list)
    resource_files: list[InputFileItem] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict)
    context: ExecutionContext

    def file_with_role(self, role: str) -> InputFileItem:
        for item in self.input_files:
            if item.role == role:
                return item
        raise EnvelopeError(f"input envelope {self.run_id}: no input file with role {role!r}")


class Timing(_Strict):
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ValidationMessage(_Strict):
    severity: Severity
    code: str
    text: str
    location: str | None = None


class ValidationMetric(_Strict):
    name: str
    value: float | int | str | bool | None
    unit: str | None = None


class ValidationArtifact(_Strict):
    name: str
    type: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")  # e.g. timeseries, log, plot, simulation-db
    mime_type: str
    uri: str
    sha256: str | None = None


class OutputEnvelope(_Strict):
    schema_version: Literal["validibot.output.v1"] = OUTPUT_SCHEMA
    run_id: str
    validator: ValidatorRef
    status: Status
    timing: Timing = Field(default_factory=Timing)
    messages: list[ValidationMessage] = Field(default_factory=list)
    metrics: list[ValidationMetric] = Field(default_factory=list)
    artifacts: list[ValidationArtifact] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    input_envelope_sha256: str | None = None

    def error(self, code: str, text: str, location: str | None = None) -> None:
        self.messages.append(ValidationMessage(severity=Severity.ERROR, code=code, text=text, location=location))

    @property
    def errors(self) -> list[ValidationMessage]:
        return [m for m in self.messages if m.severity == Severity.ERROR]


def now() -> datetime:
    return datetime.now(UTC)


def envelope_sha256(raw: bytes) -> str:
    """Identity of an input envelope: the SHA-256 of its exact bytes (used for replay)."""
    return hashlib.sha256(raw).hexdigest()


def _load(model: type[BaseModel], raw: bytes | str, where: str) -> Any:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"{where}: not valid JSON ({exc}); write the envelope with model_dump_json()") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise EnvelopeError(f"{where}: invalid {model.__name__}: {problems}") from None


def load_input_envelope(raw: bytes | str, where: str = "input envelope") -> InputEnvelope:
    return _load(InputEnvelope, raw, where)


def load_output_envelope(raw: bytes | str, where: str = "output envelope") -> OutputEnvelope:
    return _load(OutputEnvelope, raw, where)
