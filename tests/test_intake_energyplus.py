"""Control-plane EnergyPlus intake: every model is an in-test string, never a downloaded file; nothing runs EnergyPlus.

Each bad input must yield a rejected report with a stable code and a text that names the uploaded file, and must
never raise: intake runs on untrusted uploads.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from validibot_pipelines.envelopes.base import Severity
from validibot_pipelines.intake.common import MAX_FINDINGS_PER_CODE, IntakeError, IntakeReport, MiB
from validibot_pipelines.validators.energyplus.intake import (
    EnergyPlusCode,
    EnergyPlusLimits,
    check_energyplus,
    unsafe_reference_reason,
)

GOOD_IDF = """! Minimal model: enough for intake, not a full simulation
Version,25.2;

Building,
    Office,                  !- Name
    0,                       !- North Axis {deg}
    Suburbs;                 !- Terrain

Zone,
    Core;                    !- Name

Zone,
    Perimeter;               !- Name

RunPeriod,
    Annual,                  !- Name
    1,                       !- Begin Month
    1,                       !- Begin Day of Month
    ,                        !- Begin Year
    12,                      !- End Month
    31;                      !- End Day of Month
"""

GOOD_EPJSON: dict = {
    "Version": {"Version 1": {"version_identifier": "25.2"}},
    "Building": {"Office": {"north_axis": 0, "terrain": "Suburbs"}},
    "Zone": {"Core": {}, "Perimeter": {}},
    "RunPeriod": {"Annual": {"begin_month": 1, "begin_day_of_month": 1, "end_month": 12, "end_day_of_month": 31}},
}


def stage(tmp_path: Path, content: str | bytes, name: str = "model.idf") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def check(
    tmp_path: Path, content: str | bytes, name: str = "model.idf", limits: EnergyPlusLimits | None = None
) -> IntakeReport:
    """Stage ``content`` under ``name`` and check it; every finding must name the uploaded file."""
    path = stage(tmp_path, content, name)
    report = check_energyplus(path, name, limits) if limits else check_energyplus(path, name)
    for finding in report.findings:
        assert finding.text.startswith(f"{name}: "), finding.text
        assert "; " in finding.text, f"no fix given: {finding.text}"
    return report


def rejected_with(report: IntakeReport, code: EnergyPlusCode) -> str:
    assert not report.accepted
    assert code in report.codes, report.findings
    return next(f.text for f in report.errors if f.code == code)


def schedule_file(file_name: str) -> str:
    return GOOD_IDF + f"\nSchedule:File,\n    Occupancy,\n    Fraction,\n    {file_name},\n    2,\n    1;\n"


# --- accepted models ----------------------------------------------------------------------------------------------


def test_good_idf_is_accepted_with_facts(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD_IDF)
    assert report.accepted and report.findings == []
    assert report.sha256 == hashlib.sha256(GOOD_IDF.encode()).hexdigest()
    assert report.size_bytes == len(GOOD_IDF.encode())
    facts = report.facts
    assert facts["format"] == "idf" and facts["encoding"] == "utf-8" and facts["model_version"] == "25.2"
    assert facts["object_count"] == 5 and facts["zone_count"] == 2 and facts["has_run_period"] is True
    assert facts["class_counts"] == {"Zone": 2, "Version": 1, "Building": 1, "RunPeriod": 1}
    assert facts["external_files"] == []


def test_good_epjson_is_accepted_with_facts(tmp_path: Path) -> None:
    report = check(tmp_path, json.dumps(GOOD_EPJSON, indent=2), "model.epJSON")
    assert report.accepted and report.findings == []
    facts = report.facts
    assert facts["format"] == "epjson" and facts["model_version"] == "25.2"
    assert facts["object_count"] == 5 and facts["zone_count"] == 2 and facts["has_run_period"] is True


def test_latin1_and_windows1252_idfs_are_accepted(tmp_path: Path) -> None:
    # "Bâtiment" in Latin-1 and a Windows-1252 en dash; \x81 is undefined in Windows-1252, so Latin-1 is used.
    cp1252 = GOOD_IDF.replace("Office", "B\xe2timent \u2013 Est").encode("cp1252")
    report = check(tmp_path, cp1252)
    assert report.accepted and report.facts["encoding"] == "cp1252"
    latin1 = GOOD_IDF.encode("latin-1").replace(b"! Minimal", b"! \x81 Minimal")
    report = check(tmp_path, latin1, "other.idf")
    assert report.accepted and report.facts["encoding"] == "latin-1"


def test_utf8_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    report = check(tmp_path, b"\xef\xbb\xbf" + GOOD_IDF.replace("\n", "\r\n").encode())
    assert report.accepted and report.facts["model_version"] == "25.2"
    report = check(tmp_path, b"\xef\xbb\xbf" + json.dumps(GOOD_EPJSON).encode(), "model.epJSON")
    assert report.accepted and report.facts["format"] == "epjson"


def test_ems_sensors_without_programs_are_not_unsafe(tmp_path: Path) -> None:
    text = GOOD_IDF + "EnergyManagementSystem:Sensor,T,Core,Zone Mean Air Temperature;\n"
    assert check(tmp_path, text).accepted


# --- size and text sanity -----------------------------------------------------------------------------------------


def test_file_over_the_cap_is_rejected_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.idf"
    with path.open("wb") as fh:  # sparse: 21 MiB on paper, nothing on disk, so the test stays fast
        fh.truncate(21 * MiB)
    report = check_energyplus(path, "huge.idf")
    text = rejected_with(report, EnergyPlusCode.TOO_LARGE)
    assert report.sha256 is None and report.codes == [EnergyPlusCode.TOO_LARGE]
    assert "21.0 MiB" in text and "20.0 MiB" in text


def test_cap_is_configurable(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD_IDF, limits=EnergyPlusLimits(max_bytes=100))
    rejected_with(report, EnergyPlusCode.TOO_LARGE)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "NUL byte"),
        (bytes(range(1, 32)) * 50 + b"Version,25.2;", "binary"),
        ("Version,25.2;\n".encode("utf-16"), "UTF-16"),
        (b"PK\x03\x04" + b"\x00" * 100, "NUL byte"),
    ],
    ids=["png", "control-characters", "utf16", "zip"],
)
def test_binary_files_are_not_text(tmp_path: Path, content: bytes, needle: str) -> None:
    report = check(tmp_path, content)
    assert needle in rejected_with(report, EnergyPlusCode.NOT_TEXT)
    assert report.sha256 == hashlib.sha256(content).hexdigest()


def test_epjson_must_be_utf8(tmp_path: Path) -> None:
    content = json.dumps({**GOOD_EPJSON, "Building": {"B\xe2timent": {}}}, ensure_ascii=False).encode("latin-1")
    assert "UTF-8" in rejected_with(check(tmp_path, content, "model.epJSON"), EnergyPlusCode.NOT_TEXT)


def test_empty_file_has_no_objects(tmp_path: Path) -> None:
    rejected_with(check(tmp_path, b""), EnergyPlusCode.NO_OBJECTS)
    rejected_with(check(tmp_path, "! just a comment\n", "c.idf"), EnergyPlusCode.NO_OBJECTS)
    rejected_with(check(tmp_path, "{}", "e.epJSON"), EnergyPlusCode.NO_OBJECTS)


# --- format and syntax --------------------------------------------------------------------------------------------


def test_idf_that_is_really_json(tmp_path: Path) -> None:
    text = rejected_with(check(tmp_path, json.dumps(GOOD_EPJSON)), EnergyPlusCode.FORMAT_MISMATCH)
    assert ".epJSON" in text


def test_epjson_that_is_really_idf(tmp_path: Path) -> None:
    text = rejected_with(check(tmp_path, GOOD_IDF, "model.epJSON"), EnergyPlusCode.FORMAT_MISMATCH)
    assert "rename it to .idf" in text


def test_json_that_is_not_an_energyplus_model(tmp_path: Path) -> None:
    report = check(tmp_path, json.dumps({"name": "x", "items": {}}), "model.epJSON")
    rejected_with(report, EnergyPlusCode.FORMAT_MISMATCH)


def test_extension_is_matched_case_insensitively(tmp_path: Path) -> None:
    assert check(tmp_path, GOOD_IDF, "MODEL.IDF").accepted
    assert check(tmp_path, json.dumps(GOOD_EPJSON), "model.EPJSON").accepted


def test_idf_syntax_error_names_the_line(tmp_path: Path) -> None:
    broken = GOOD_IDF.replace("Version,25.2;", "Version,25.2")  # forgotten ';' on line 2
    report = check(tmp_path, broken)
    text = rejected_with(report, EnergyPlusCode.SYNTAX)
    assert "line 2" in text and "'25.2'" in text
    assert report.errors[0].location == "line 2"


def test_unterminated_idf_object_at_end_of_file(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD_IDF + "\nZone,\n    Attic\n")
    text = rejected_with(report, EnergyPlusCode.SYNTAX)
    assert "not terminated by ';'" in text and "line 23" in text


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    text = json.dumps(GOOD_EPJSON, indent=2).replace('"Core": {}', '"Core": {,}')
    message = rejected_with(check(tmp_path, text, "model.epJSON"), EnergyPlusCode.SYNTAX)
    assert "line 14, column 14" in message  # the "Core": {,} line


@pytest.mark.parametrize(
    "content",
    [
        '[{"Version": {}}]',
        '{"Version": {"Version 1": {"version_identifier": "25.2"}}, "Zone": ["Core"]}',
        "[" * 100_000,
    ],
    ids=["array", "class-not-object", "deep-nesting"],
)
def test_malformed_epjson_shapes(tmp_path: Path, content: str) -> None:
    rejected_with(check(tmp_path, content, "model.epJSON"), EnergyPlusCode.SYNTAX)


# --- unsafe objects -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        "PythonPlugin:Instance,Plugin,No,my_plugin,MyPlugin;",
        "PythonPlugin:SearchPaths,Paths,Yes,Yes,Yes,/opt/evil;",
        "pythonplugin:variables,Vars,x;",
        "ExternalInterface,PtolemyServer;",
        "ExternalInterface:FunctionalMockupUnitImport,other.fmu,0,0;",
        "EnergyManagementSystem:Program,Prog,SET x = 1;",
        "ENERGYMANAGEMENTSYSTEM:SUBROUTINE,Sub,SET x = 1;",
    ],
)
def test_code_running_objects_are_rejected_with_class_and_line(tmp_path: Path, obj: str) -> None:
    report = check(tmp_path, GOOD_IDF + "\n" + obj + "\n")
    text = rejected_with(report, EnergyPlusCode.UNSAFE_OBJECT)
    class_name = obj.split(",", 1)[0]
    assert class_name in text and "line 23" in text
    assert report.errors[0].location == "line 23"


def test_unsafe_epjson_objects_are_named(tmp_path: Path) -> None:
    model = {**GOOD_EPJSON, "PythonPlugin:Instance": {"My Plugin": {"python_module_name": "evil"}}}
    text = rejected_with(check(tmp_path, json.dumps(model), "model.epJSON"), EnergyPlusCode.UNSAFE_OBJECT)
    assert "PythonPlugin:Instance object 'My Plugin'" in text


def test_many_unsafe_objects_are_capped(tmp_path: Path) -> None:
    text = GOOD_IDF + "".join(f"EnergyManagementSystem:Program,P{i},SET x = {i};\n" for i in range(30))
    report = check(tmp_path, text)
    unsafe = [f for f in report.errors if f.code == EnergyPlusCode.UNSAFE_OBJECT]
    assert len(unsafe) == MAX_FINDINGS_PER_CODE + 1
    assert "10 more EP_UNSAFE_OBJECT" in unsafe[-1].text


@pytest.mark.parametrize("name", ["schedules.csv", "data/occupancy.csv", "data\\occupancy.csv", "my..file.csv"])
def test_schedule_file_with_relative_name_is_accepted(tmp_path: Path, name: str) -> None:
    report = check(tmp_path, schedule_file(name))
    assert report.accepted, report.findings
    assert report.facts["external_files"] == [name]


@pytest.mark.parametrize(
    "name",
    [
        "/etc/passwd",
        "C:\\Users\\me\\occupancy.csv",
        "c:/data/occupancy.csv",
        "\\\\server\\share\\occupancy.csv",
        "../occupancy.csv",
        "data/../../secrets.csv",
        "..\\..\\occupancy.csv",
        "http://example.com/occupancy.csv",
        "https://example.com/occupancy.csv",
        "ftp://example.com/occupancy.csv",
        "file:///etc/passwd",
    ],
)
def test_schedule_file_escaping_the_model_folder_is_rejected(tmp_path: Path, name: str) -> None:
    report = check(tmp_path, schedule_file(name))
    text = rejected_with(report, EnergyPlusCode.UNSAFE_OBJECT)
    assert "Schedule:File" in text and f"'{name}'" in text and "line 23" in text
    assert report.facts["external_files"] == []


def test_other_file_references_and_epjson_schedule_file(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD_IDF + "Schedule:File:Shading,/tmp/shading.csv;\n")
    assert "Schedule:File:Shading" in rejected_with(report, EnergyPlusCode.UNSAFE_OBJECT)
    model = {**GOOD_EPJSON, "Schedule:File": {"Occ": {"file_name": "https://x.test/o.csv", "column_number": 2}}}
    text = rejected_with(check(tmp_path, json.dumps(model), "model.epJSON"), EnergyPlusCode.UNSAFE_OBJECT)
    assert "Schedule:File object 'Occ'" in text and "URL" in text
    model["Schedule:File"]["Occ"]["file_name"] = "occupancy.csv"
    assert check(tmp_path, json.dumps(model), "ok.epJSON").facts["external_files"] == ["occupancy.csv"]


def test_unsafe_reference_reason() -> None:
    assert unsafe_reference_reason("") is None
    assert unsafe_reference_reason("sched.csv") is None
    assert "URL" in (unsafe_reference_reason("HTTPS://x") or "")
    assert "absolute" in (unsafe_reference_reason("/x") or "")
    assert "drive letter" in (unsafe_reference_reason("D:x.csv") or "")
    assert "'..'" in (unsafe_reference_reason("a/../../b") or "")


# --- version warnings ---------------------------------------------------------------------------------------------


def test_missing_version_is_a_warning(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD_IDF.replace("Version,25.2;", ""))
    assert report.accepted and report.codes == [EnergyPlusCode.NO_VERSION]
    assert report.findings[0].severity == Severity.WARNING and report.facts["model_version"] is None
    epjson = {k: v for k, v in GOOD_EPJSON.items() if k != "Version"}
    report = check(tmp_path, json.dumps(epjson), "model.epJSON")
    assert report.accepted and report.codes == [EnergyPlusCode.NO_VERSION]


def test_other_version_is_a_warning(tmp_path: Path) -> None:
    report = check(tmp_path, GOOD_IDF.replace("25.2", "9.6"))
    assert report.accepted and report.codes == [EnergyPlusCode.VERSION_MISMATCH]
    assert "9.6" in report.warnings[0].text and "25.2" in report.warnings[0].text
    assert check(tmp_path, GOOD_IDF.replace("25.2", "25.2.0"), "patch.idf").findings == []
    unchecked = EnergyPlusLimits(expected_version=None)
    assert check(tmp_path, GOOD_IDF.replace("25.2", "9.6"), "x.idf", limits=unchecked).findings == []


# --- robustness ---------------------------------------------------------------------------------------------------


def test_missing_staged_file_is_a_system_fault(tmp_path: Path) -> None:
    with pytest.raises(IntakeError):
        check_energyplus(tmp_path / "nope.idf", "nope.idf")


def test_garbage_never_raises(tmp_path: Path) -> None:
    rng = random.Random(1234)
    alphabet = "Version,;!{}[]\"\n: \\/.x\x00\x01é0123456789"
    for index in range(200):
        content = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))).encode("utf-8", "replace")
        for name in (f"g{index}.idf", f"g{index}.epJSON", f"g{index}.txt"):
            report = check_energyplus(stage(tmp_path, content, name), name)
            assert isinstance(report, IntakeReport)
            assert report.accepted == (not report.errors)
