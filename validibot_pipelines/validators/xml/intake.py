"""Control-plane intake checks for XML models and for the XSD schemas uploaded with them.

Pure Python only (:mod:`defusedxml` over the standard library's expat): lxml/libxml2 parses the files later, in
the worker's sandbox. Caught here:

* oversize uploads, from ``stat`` before a byte is read;
* DTDs and entity declarations of any kind: they are how "billion laughs" (entities expanding to gigabytes) and
  XXE (entities reading ``file:///etc/passwd`` or URLs) work, and no XML model or XSD needs them;
* text that is not well-formed XML (with the line and column), and text XML parsers cannot decode (UTF-16
  without a byte-order mark, which expat guesses but libxml2 does not);
* documents nested absurdly deep or with absurdly many elements, counted while streaming (each element is
  dropped once it ends, so memory stays bounded whatever the upload holds);
* for schemas: a root other than ``xs:schema`` and ``xs:include``/``xs:import`` locations the worker will not
  follow (URLs, paths, ``..``): it only reads schema files uploaded with the model, by plain file name.

Facts recorded for later steps and the UI: the root element, its namespace, the element count, the depth and
the ``xsi:schemaLocation`` the model names, if any.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import iterparse
from pydantic import BaseModel, ConfigDict, Field

from validibot_pipelines.envelopes.base import ValidationMessage
from validibot_pipelines.envelopes.bounds import clip
from validibot_pipelines.intake.common import Findings, IntakeReport, MiB, read_upload_capped, shown_name
from validibot_pipelines.validators.xml.envelopes import MAX_FINDING_CHARS

XSD_NS = "http://www.w3.org/2001/XMLSchema"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
#: XSD elements whose ``schemaLocation`` makes the schema processor load another file.
_XSD_REFERENCES = {f"{{{XSD_NS}}}{tag}" for tag in ("include", "import", "redefine", "override")}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_UTF32_BOMS = (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_SIGNATURES = {b"PK\x03\x04": "a ZIP archive (an FMU or a zipped project?)", b"%PDF": "a PDF",
               b"\x89PNG": "a PNG image", b"\x7fELF": "an executable", b"\x1f\x8b": "a gzip archive"}
_DTD_FIX = "remove the <!DOCTYPE> / entity declarations; XML models may not declare entities"
MAX_FACT_CHARS = MAX_FINDING_CHARS  # the worker compares its answer with these facts clipped alike


class XmlCode(StrEnum):
    """Stable finding codes; clients route on these, so never rename one."""

    TOO_LARGE = "XML_TOO_LARGE"
    DTD_FORBIDDEN = "XML_DTD_FORBIDDEN"
    NOT_WELL_FORMED = "XML_NOT_WELL_FORMED"
    TOO_DEEP = "XML_TOO_DEEP"
    TOO_MANY_ELEMENTS = "XML_TOO_MANY_ELEMENTS"
    SCHEMA_TOO_LARGE = "XML_SCHEMA_TOO_LARGE"
    SCHEMA_DTD_FORBIDDEN = "XML_SCHEMA_DTD_FORBIDDEN"
    SCHEMA_INVALID = "XML_SCHEMA_INVALID"


class XmlLimits(BaseModel):
    """Resource caps for XML intake; deployments may tighten or loosen them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Upload size on disk, checked from ``stat`` first. Large real gbXML models are tens of MiB.
    max_bytes: int = Field(default=50 * MiB, gt=0)
    #: Deepest element nesting; real models nest a few dozen levels. Bounds libxml2's recursion in the worker.
    max_depth: int = Field(default=256, gt=0)
    #: Elements in the whole document; bounds the tree libxml2 builds in the worker.
    max_elements: int = Field(default=2_000_000, gt=0)


DEFAULT_XML_LIMITS = XmlLimits()


@dataclass
class _Problem:
    """Why a document was refused: ``kind`` picks the code, ``text`` is the problem without the fix."""

    kind: str  # "dtd", "syntax", "deep", "many"
    text: str
    location: str | None = None


@dataclass
class _Scan:
    """What one streaming pass over a document learned (``problem`` set: it stopped there)."""

    root_tag: str | None = None
    root_attrib: dict[str, str] = field(default_factory=dict)
    element_count: int = 0
    max_depth: int = 0
    references: list[tuple[str, str]] = field(default_factory=list)  # (xs:include/... local name, schemaLocation)
    problem: _Problem | None = None


def check_xml(path: Path, name: str, limits: XmlLimits = DEFAULT_XML_LIMITS) -> IntakeReport:
    """Run the control-plane checks on a staged ``.xml`` model; never raises for bad input.

    ``name`` is the name the user uploaded; it prefixes every finding. Only the control plane being unable to
    read its own staged file raises :class:`~validibot_pipelines.intake.common.IntakeError`.
    """
    findings = Findings(shown_name(name))
    facts: dict[str, Any] = {"root_element": None, "namespace": None, "element_count": None, "max_depth": None,
                             "schema_location": None}
    size, data = read_upload_capped(path, findings, XmlCode.TOO_LARGE, limits.max_bytes, "XML model")
    if data is None:
        return IntakeReport.build(name, size, findings.items(), facts)
    scan = _scan(data, limits)
    if scan.root_tag is not None:
        namespace, local = _split(scan.root_tag)
        facts.update(root_element=clip(local, MAX_FACT_CHARS), namespace=clip(namespace, MAX_FACT_CHARS) if namespace
                     else None, schema_location=_schema_location(scan.root_attrib, namespace))
    if scan.problem is None:
        facts.update(element_count=scan.element_count, max_depth=scan.max_depth)
    else:
        _report_model_problem(scan.problem, findings, limits)
    return IntakeReport.build(name, len(data), findings.items(), facts, sha256=hashlib.sha256(data).hexdigest())


def check_schema_file(path: Path, name: str, max_bytes: int) -> list[ValidationMessage]:
    """The same defused checks for an uploaded XSD, plus "is it a schema at all"; an empty list means fine."""
    findings = Findings(shown_name(name))
    _size, data = read_upload_capped(path, findings, XmlCode.SCHEMA_TOO_LARGE, max_bytes, "XML schema")
    if data is None:
        return findings.items()
    scan = _scan(data, DEFAULT_XML_LIMITS, references=True)
    if scan.problem is not None:
        _report_schema_problem(scan.problem, findings)
        return findings.items()
    if scan.root_tag != f"{{{XSD_NS}}}schema":
        findings.error(XmlCode.SCHEMA_INVALID, f"is not an XSD (root element is {_shown_tag(scan.root_tag)}); "
                       f"upload the W3C XML Schema file (.xsd) whose root element is <xs:schema>")
    for tag, location in scan.references:
        if why := unsafe_schema_location(location):
            findings.error(XmlCode.SCHEMA_INVALID, f"xs:{tag} schemaLocation '{clip(location, 200)}' {why}; the "
                           f"validator only reads schema files uploaded with the model, by plain file name: upload "
                           f"that schema next to the model and set schemaLocation=\"{_leaf(location)}\"")
    return findings.items()


def unsafe_schema_location(location: str) -> str | None:
    """Why the worker will refuse to load ``location`` from an ``xs:include``/``xs:import``, or ``None``."""
    text = location.strip()
    if _URL.match(text):
        return "is a URL (the validator never fetches schemas from the network)"
    if text.startswith(("/", "\\")):
        return "is an absolute path on a machine the validator cannot see"
    if ".." in re.split(r"[\\/]", text):
        return "climbs out of the schema's folder through '..'"
    if "/" in text or "\\" in text:
        return "names a sub-folder (uploaded schemas sit side by side in one folder)"
    return None


def _scan(data: bytes, limits: XmlLimits, references: bool = False) -> _Scan:
    """Stream ``data`` once with defusedxml (DTDs forbidden), counting elements and depth, stopping at a limit.

    Each element is cleared and detached from its parent when it ends, so memory stays proportional to the
    depth, not to the size of the document.
    """
    scan = _Scan()
    if problem := _encoding_problem(data):
        scan.problem = _Problem("syntax", problem, "line 1, column 1")
        return scan
    stack: list[Any] = []
    try:
        for event, element in iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True,
                                        forbid_entities=True, forbid_external=True):
            if event == "end":
                stack.pop()
                element.clear()
                if stack:
                    stack[-1].remove(element)
                continue
            stack.append(element)
            scan.element_count += 1
            scan.max_depth = max(scan.max_depth, len(stack))
            if scan.root_tag is None:
                scan.root_tag, scan.root_attrib = element.tag, dict(element.attrib)
            if references and element.tag in _XSD_REFERENCES and element.get("schemaLocation") is not None:
                scan.references.append((_split(element.tag)[1], element.get("schemaLocation")))
            if len(stack) > limits.max_depth:
                scan.problem = _Problem("deep", f"nests elements more than {limits.max_depth} levels deep")
                return scan
            if scan.element_count > limits.max_elements:
                scan.problem = _Problem("many", f"has more than {limits.max_elements:,} elements")
                return scan
    except DefusedXmlException as exc:
        scan.problem = _Problem("dtd", _what_is_declared(exc))
    except ParseError as exc:
        line, column = exc.position
        column += 1  # expat counts columns from 0, editors from 1
        reason = expat.ErrorString(exc.code).removeprefix("not well-formed (").removesuffix(")")
        scan.problem = _Problem("syntax", f"is not well-formed XML: {reason} at line {line}, column {column}"
                                f"{_what_it_is(data)}", f"line {line}, column {column}")
    except (LookupError, ValueError) as exc:  # an unknown declared encoding, bytes that do not decode
        scan.problem = _Problem("syntax", f"cannot be decoded as XML text ({clip(str(exc), 200)})", "line 1, column 1")
    return scan


def _encoding_problem(data: bytes) -> str | None:
    """Encodings expat and libxml2 would disagree on (or both refuse), named so the user can re-save the file."""
    if data.startswith(_UTF32_BOMS):
        return "is UTF-32 encoded text, which the XML validator cannot read"
    if data.startswith(_BOMS):
        return None
    if b"\x00" in data[:4]:
        return "is UTF-16 (or UTF-32) text without a byte-order mark, which XML parsers cannot reliably detect"
    return None


def _what_is_declared(exc: DefusedXmlException) -> str:
    if isinstance(exc, DTDForbidden):
        return f"declares a DTD (<!DOCTYPE {exc.name}>)"
    if isinstance(exc, EntitiesForbidden):
        return f"declares the entity '{exc.name}'"
    if isinstance(exc, ExternalReferenceForbidden):
        return f"references the external resource '{clip(str(exc.sysid), 200)}'"
    return f"uses an XML feature that is refused ({type(exc).__name__})"


def _report_model_problem(problem: _Problem, findings: Findings, limits: XmlLimits) -> None:
    if problem.kind == "dtd":
        findings.error(XmlCode.DTD_FORBIDDEN, f"{problem.text}, which can expand to gigabytes (\"billion laughs\") "
                       f"or read files and URLs on the server (XXE); {_DTD_FIX}", problem.location)
    elif problem.kind == "syntax":
        findings.error(XmlCode.NOT_WELL_FORMED, f"{problem.text}; fix it in a text or XML editor (or export the "
                       f"model again from its tool) and upload it again, saved as UTF-8", problem.location)
    elif problem.kind == "deep":
        findings.error(XmlCode.TOO_DEEP, f"{problem.text}; real models nest a few dozen levels, so this is not a "
                       f"model the validator takes — export it again from its tool")
    else:
        findings.error(XmlCode.TOO_MANY_ELEMENTS, f"{problem.text}, over the limit for XML models "
                       f"({limits.max_elements:,}); split the model or drop unused parts and upload it again")


def _report_schema_problem(problem: _Problem, findings: Findings) -> None:
    if problem.kind == "dtd":
        findings.error(XmlCode.SCHEMA_DTD_FORBIDDEN, f"{problem.text}, which can expand to gigabytes or read "
                       f"files and URLs on the server; remove the <!DOCTYPE> / entity declarations from the schema "
                       f"(XSDs need neither) and upload it again", problem.location)
    elif problem.kind == "syntax":
        findings.error(XmlCode.SCHEMA_INVALID, f"{problem.text}; upload the original .xsd file, saved as UTF-8",
                       problem.location)
    else:
        findings.error(XmlCode.SCHEMA_INVALID, f"{problem.text}, which no real XSD does; upload the original "
                       f".xsd file")


def _split(tag: str) -> tuple[str | None, str]:
    """``"{ns}local"`` -> ``("ns", "local")``; ``"local"`` -> ``(None, "local")``."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace or None, local
    return None, tag


def _shown_tag(tag: str | None) -> str:
    if tag is None:
        return "missing"
    namespace, local = _split(tag)
    return f"'{local}' in namespace '{clip(namespace, 200)}'" if namespace else f"'{clip(local, 200)}'"


def _schema_location(attrib: dict[str, str], namespace: str | None) -> str | None:
    """The schema file the model names: ``xsi:noNamespaceSchemaLocation``, or the ``xsi:schemaLocation`` entry
    for the root's namespace (the first entry otherwise, or the lone value when it is not "namespace URI" pairs)."""
    plain = attrib.get(f"{{{XSI_NS}}}noNamespaceSchemaLocation", "").strip()
    if plain:
        return clip(plain, MAX_FACT_CHARS)
    tokens = attrib.get(f"{{{XSI_NS}}}schemaLocation", "").split()
    if len(tokens) == 1:
        return clip(tokens[0], MAX_FACT_CHARS)
    pairs = dict(zip(tokens[::2], tokens[1::2], strict=False))
    if not pairs:
        return None
    return clip(pairs.get(namespace or "", next(iter(pairs.values()))), MAX_FACT_CHARS)


def _leaf(location: str) -> str:
    return clip(re.split(r"[\\/]", location.strip().rstrip("/\\"))[-1] or "schema.xsd", 100)


def _what_it_is(data: bytes) -> str:
    """A hint when the bytes are recognisably another format (a zipped project or an image picked by mistake)."""
    for magic, what in _SIGNATURES.items():
        if data.startswith(magic):
            return f" (it looks like {what}, not XML)"
    return ""
