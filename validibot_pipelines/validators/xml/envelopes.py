"""Typed XML-schema validation inputs and outputs carried in the envelopes' ``inputs`` / ``outputs`` fields.

Shared by the control plane (which builds the inputs from the validation spec) and the worker (which validates).
No dagster and no lxml here: both sides import it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from validibot_pipelines.envelopes.base import check_leaf_name
from validibot_pipelines.envelopes.bounds import clip

ValidationMode = Literal["strict", "lenient"]
#: Schemas the worker ships itself (fmpy's copies of the FMI standard's XSDs), so no upload is needed.
BUILTIN_SCHEMAS = ("fmi2", "fmi3")
#: A finding's message is libxml2's sentence about one element; longer ones are clipped (a hostile schema can
#: make libxml2 quote huge enumerations back).
MAX_FINDING_CHARS = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class XMLExpected(_Strict):
    """What intake's own parse (defusedxml, in the control plane) saw: the worker's answer must agree with it."""

    root_element: str = Field(max_length=MAX_FINDING_CHARS)
    namespace: str | None = Field(default=None, max_length=MAX_FINDING_CHARS)
    element_count: int = Field(ge=1)


class XMLInputs(_Strict):
    """What to validate against and how strictly; the schema files themselves are staged with role ``schema``."""

    #: Where the control plane staged the main schema for the worker; informative (the worker reads the staged
    #: files, whose checksums the envelope pins).
    schema_uri: str | None = None
    #: File name of the main XSD among the staged schema files (``gbxml.xsd``), or a built-in: ``fmi2``/``fmi3``.
    schema_name: str = Field(min_length=1, max_length=200)
    #: strict: any schema violation fails the validation; lenient: violations are warnings.
    validation_mode: ValidationMode = "strict"
    timeout_seconds: float = Field(default=120, gt=0)
    #: Violations listed in ``outputs.findings`` (and as messages); the rest are counted, not listed. At most
    #: 1,000: each finding can take ~1 KiB in the output envelope, which must stay under 4 MiB.
    max_findings: int = Field(default=200, ge=1, le=1000)
    #: intake's facts; a sandboxed answer naming another root, namespace or element count is forged
    expected: XMLExpected | None = None

    @field_validator("schema_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # A name, never a path: the worker only ever looks it up among the files it staged.
        return check_leaf_name(value)


class XMLFinding(_Strict):
    """One problem libxml2 reported, where it is in the model (lines and columns as libxml2 counts them)."""

    line: int = Field(ge=0)
    column: int = Field(ge=0)
    level: Literal["error", "warning"]
    message: str
    path: str | None = None  # lxml's XPath-like location of the element, e.g. /gbXML/Campus/Building[2]

    @field_validator("message")
    @classmethod
    def _clip(cls, value: str) -> str:
        return clip(value.strip(), MAX_FINDING_CHARS)

    @field_validator("path")
    @classmethod
    def _clip_path(cls, value: str | None) -> str | None:
        return clip(value, MAX_FINDING_CHARS) if value else value


class XMLOutputs(_Strict):
    """The verdict's facts: what the model is, whether it is valid, and the first ``max_findings`` problems."""

    root_element: str  # local name; "" when the model is not well-formed
    namespace: str | None
    schema_name: str
    validation_mode: ValidationMode
    valid: bool
    error_count: int = Field(ge=0)
    warning_count: int = Field(ge=0)
    element_count: int = Field(ge=0)
    findings: list[XMLFinding]
    findings_truncated: bool
    execution_seconds: float = Field(ge=0)


SCHEMAS: dict[str, type[BaseModel]] = {
    "validibot.xml.inputs": XMLInputs,
    "validibot.xml.outputs": XMLOutputs,
}
