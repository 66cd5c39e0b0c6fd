"""Control-plane intake checks for CAD parts (STEP, and STL where it is cheap).

Bytes and text only: OpenCASCADE (through Gmsh) parses the geometry later, in the isolated worker. Caught here:

* oversize uploads, from ``stat`` before a byte is read;
* files that are not STEP at all (an image, a zip, an IGES or a PDF renamed to ``.step``): ISO 10303-21 files
  start with ``ISO-10303-21;`` and carry a ``HEADER`` and a ``DATA`` section;
* truncated uploads: a complete exchange file ends with ``END-ISO-10303-21;`` after the last ``ENDSEC;``;
* a ``DATA`` section without a single entity instance.

Facts recorded for the UI and CEL (``p``): the schema (AP203/AP214/AP242), the originating system, the number of
entity instances and of solids / faces as declared in the text.

STL: binary files must be exactly ``84 + 50 × triangles`` bytes long; ASCII files must run from ``solid`` to
``endsolid`` with at least one facet.
"""

from __future__ import annotations

import hashlib
import re
import struct
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from validibot_pipelines.intake.common import (
    Findings,
    IntakeReport,
    MiB,
    decode_text,
    read_upload_capped,
)

_MAGIC = "ISO-10303-21;"
_END = "END-ISO-10303-21;"
_ENTITY = re.compile(rb"^\s*#\d+\s*=", re.M)
_SOLIDS = re.compile(rb"\b(?:MANIFOLD_SOLID_BREP|BREP_WITH_VOIDS|FACETED_BREP)\s*\(")
_FACES = re.compile(rb"\b(?:ADVANCED_FACE|FACE_SURFACE)\s*\(")
_SCHEMA = re.compile(r"FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'", re.I)
_FILE_NAME = re.compile(r"FILE_NAME\s*\((.*?)\)\s*;", re.I | re.S)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_STL_FACET = re.compile(rb"^\s*facet\s", re.M)


class MeshCode(StrEnum):
    """Stable finding codes; clients route on these, so never rename one."""

    TOO_LARGE = "MESH_TOO_LARGE"
    NOT_STEP = "MESH_NOT_STEP"
    TRUNCATED = "MESH_STEP_TRUNCATED"
    NO_ENTITIES = "MESH_STEP_EMPTY"
    NOT_STL = "MESH_NOT_STL"


class MeshLimits(BaseModel):
    """Resource caps for CAD intake; deployments may tighten or loosen them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Upload size on disk, checked from ``stat`` first. Real single parts are a few MiB; assemblies tens.
    max_bytes: int = Field(default=100 * MiB, gt=0)


DEFAULT_MESH_LIMITS = MeshLimits()


def check_cad(path: Path, file_name: str, limits: MeshLimits = DEFAULT_MESH_LIMITS) -> IntakeReport:
    """Run the control-plane checks on a staged ``.step`` / ``.stp`` / ``.stl`` upload; never raises for bad input."""
    findings = Findings(file_name)
    facts: dict[str, Any] = {"format": None}
    size, data = read_upload_capped(path, findings, MeshCode.TOO_LARGE, limits.max_bytes, "CAD part")
    if data is None:
        return IntakeReport.build(file_name, size, findings.items(), facts)
    if file_name.lower().endswith(".stl"):
        _check_stl(data, findings, facts)
    else:
        _check_step(data, findings, facts)
    digest = hashlib.sha256(data).hexdigest()
    return IntakeReport.build(file_name, len(data), findings.items(), facts, sha256=digest)


def _check_step(data: bytes, findings: Findings, facts: dict[str, Any]) -> None:
    facts["format"] = "step"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(_MAGIC.encode()):
        findings.error(MeshCode.NOT_STEP, f"does not start with '{_MAGIC}', so it is not a STEP (ISO 10303-21) "
                       f"file{_what_it_is(data)}; export the part from the CAD tool as STEP (.step/.stp)")
        return
    decoded = decode_text(data)
    if decoded.text is None:
        findings.error(MeshCode.NOT_STEP, f"{decoded.problem}; STEP files are plain text — re-export the part")
        return
    text = decoded.text
    tail = text.rstrip()
    missing = [s for s in ("HEADER;", "DATA;") if s not in text]
    if missing:
        findings.error(MeshCode.NOT_STEP, f"has no {' / '.join(missing)} section; it is not a complete STEP file "
                       "— re-export the part as STEP")
        return
    if not tail.endswith(_END) or "ENDSEC;" not in text[text.index("DATA;"):]:
        findings.error(MeshCode.TRUNCATED, f"ends without '{_END}' (the last bytes are {tail[-40:]!r}), so the "
                       "upload was cut off; upload the complete file again")
        return
    facts.update(_step_facts(data, text))
    if not facts["entity_count"]:
        findings.error(MeshCode.NO_ENTITIES, "its DATA section holds no entity instances (#1 = ...); the export "
                       "wrote no model — re-export the part with its bodies selected")


def _step_facts(data: bytes, text: str) -> dict[str, Any]:
    header = text[: text.index("DATA;")]
    schema = _SCHEMA.search(header)
    file_name = _FILE_NAME.search(header)
    system = None
    if file_name:
        fields = [m.group(1) for m in _QUOTED.finditer(file_name.group(1))]
        system = fields[-2] if len(fields) >= 2 else None  # FILE_NAME(name, time, (author), (org), pp, system, auth)
    return {
        "schema": schema.group(1).split("{")[0].strip() if schema else None,
        "originating_system": system,
        "entity_count": len(_ENTITY.findall(data)),
        "solid_count": len(_SOLIDS.findall(data)),
        "face_count": len(_FACES.findall(data)),
    }


def _check_stl(data: bytes, findings: Findings, facts: dict[str, Any]) -> None:
    if data[:5].lower() == b"solid" and b"facet" in data[:1024]:
        facts["format"] = "stl-ascii"
        triangles = len(_STL_FACET.findall(data))
        if not data.rstrip().rsplit(b"\n", 1)[-1].strip().lower().startswith(b"endsolid"):
            findings.error(MeshCode.TRUNCATED, "ASCII STL ends without 'endsolid', so the upload was cut off; "
                           "upload the complete file again")
            return
        facts["triangle_count"] = triangles
        return
    facts["format"] = "stl-binary"
    if len(data) < 84:
        findings.error(MeshCode.NOT_STL, f"is {len(data)} bytes, shorter than the 84-byte binary STL header; "
                       "export the part as STL (binary or ASCII)")
        return
    (count,) = struct.unpack_from("<I", data, 80)
    expected = 84 + 50 * count
    if count == 0 or len(data) != expected:
        findings.error(MeshCode.NOT_STL, f"declares {count:,} triangles (so {expected:,} bytes) but is "
                       f"{len(data):,} bytes; it is not a complete binary STL — re-export it")
        return
    facts["triangle_count"] = count


def _what_it_is(data: bytes) -> str:
    """A hint when the bytes are recognisably some other format (users often pick the wrong export)."""
    signatures = {b"PK\x03\x04": "a ZIP archive", b"%PDF": "a PDF", b"\x89PNG": "a PNG image",
                  b"solid": "an STL mesh", b"\x7fELF": "an executable"}
    for magic, what in signatures.items():
        if data.startswith(magic):
            return f" (it looks like {what})"
    if data[72:73] == b"S" and data[:80].strip().endswith(b"1"):
        return " (it looks like IGES)"
    return ""


def looks_complete(suffix: str, size: int, head: bytes, tail: bytes) -> bool:
    """Whether a landing-zone file ends like a complete part: STEP's ``END-ISO-10303-21``, an ASCII STL's
    ``endsolid``, a binary STL's declared length; one that does not start like its kind counts as complete."""
    if suffix in (".step", ".stp"):
        return not head.lstrip().startswith(b"ISO-10303-21") or b"END-ISO-10303-21" in tail[-4096:]
    if head[:5].lower() == b"solid":
        return b"endsolid" in tail[-4096:].lower()
    return size >= 84 and size >= 84 + 50 * int.from_bytes(head[80:84], "little")
