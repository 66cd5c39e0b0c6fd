"""Control-plane CAD intake: STEP header/trailer/entities and STL structure, read as bytes only."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from validibot_pipelines.validators.mesh.intake import MeshCode, MeshLimits, check_cad

HEADER = ("ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('x'),'2;1');\n"
          "FILE_NAME('p','2026-01-01',('a'),('o'),'pre','MyCAD 9.1','');\n"
          "FILE_SCHEMA(('CONFIG_CONTROL_DESIGN'));\nENDSEC;\n")


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_generated_step_is_accepted_with_facts(cad_parts):  # noqa: ANN001
    report = check_cad(cad_parts["two_volume_assembly"], "asm.step")
    assert report.accepted, report.findings
    assert report.facts["schema"] == "AUTOMOTIVE_DESIGN"
    assert report.facts["solid_count"] == 2 and report.facts["face_count"] == 9
    assert report.facts["originating_system"].startswith("Open CASCADE")
    assert len(report.sha256) == 64


def test_handwritten_header_facts(tmp_path):  # noqa: ANN001
    body = "DATA;\n#1 = CARTESIAN_POINT('',(0.,0.,0.));\nENDSEC;\nEND-ISO-10303-21;\n"
    path = _write(tmp_path, "p.stp", HEADER + body)
    report = check_cad(path, "p.stp")
    assert report.accepted
    assert report.facts == {"format": "step", "schema": "CONFIG_CONTROL_DESIGN", "originating_system": "MyCAD 9.1",
                            "entity_count": 1, "solid_count": 0, "face_count": 0}


@pytest.mark.parametrize(("data", "code", "words"), [
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, MeshCode.NOT_STEP, "PNG"),
    (b"PK\x03\x04" + b"\x00" * 100, MeshCode.NOT_STEP, "ZIP"),
    ("solid x\nfacet normal 0 0 1\nendsolid x\n", MeshCode.NOT_STEP, "STL"),
    ("ISO-10303-21;\nHEADER;\nENDSEC;\nEND-ISO-10303-21;\n", MeshCode.NOT_STEP, "DATA"),
    ("ISO-10303-21;\nHEADER;\x00\x00\nDATA;\nENDSEC;\nEND-ISO-10303-21;\n", MeshCode.NOT_STEP, "NUL"),
    (HEADER + "DATA;\n#1 = CARTESIAN_POINT('',(0.,0.,0.));\n#2 = DIRE", MeshCode.TRUNCATED, "cut off"),
    (HEADER + "DATA;\nENDSEC;\nEND-ISO-10303-21;\n", MeshCode.NO_ENTITIES, "no entity"),
])
def test_bad_step(tmp_path, data, code, words):  # noqa: ANN001
    report = check_cad(_write(tmp_path, "bad.step", data), "bad.step")
    assert not report.accepted
    assert report.codes == [code]
    assert report.findings[0].text.startswith("bad.step: ") and words in report.findings[0].text


def test_truncated_generated_step(cad_parts, tmp_path):  # noqa: ANN001
    data = cad_parts["box"].read_bytes()
    report = check_cad(_write(tmp_path, "half.step", data[: len(data) * 2 // 3]), "half.step")
    assert report.codes == [MeshCode.TRUNCATED]


def test_size_cap_before_reading(tmp_path):  # noqa: ANN001
    path = _write(tmp_path, "big.step", HEADER + "DATA;\n" + "#1=X();\n" * 2000 + "ENDSEC;\nEND-ISO-10303-21;\n")
    report = check_cad(path, "big.step", MeshLimits(max_bytes=1000))
    assert report.codes == [MeshCode.TOO_LARGE] and report.sha256 is None
    assert "limit" in report.findings[0].text


def _binary_stl(triangles: int, extra: bytes = b"") -> bytes:
    facet = struct.pack("<12fH", *([0.0] * 12), 0)
    return b"\x00" * 80 + struct.pack("<I", triangles) + facet * triangles + extra


def test_stl(cad_parts, tmp_path):  # noqa: ANN001
    ascii_report = check_cad(cad_parts["box_stl"], "box.stl")
    assert ascii_report.accepted and ascii_report.facts["format"] == "stl-ascii"
    assert ascii_report.facts["triangle_count"] > 12
    good = check_cad(_write(tmp_path, "b.stl", _binary_stl(3)), "b.stl")
    assert good.accepted and good.facts == {"format": "stl-binary", "triangle_count": 3}
    assert check_cad(_write(tmp_path, "c.stl", _binary_stl(3, b"xx")), "c.stl").codes == [MeshCode.NOT_STL]
    assert check_cad(_write(tmp_path, "d.stl", b"hello"), "d.stl").codes == [MeshCode.NOT_STL]
    cut = cad_parts["box_stl"].read_bytes()[:-200]
    assert check_cad(_write(tmp_path, "e.stl", cut), "e.stl").codes == [MeshCode.TRUNCATED]
