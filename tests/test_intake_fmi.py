"""Control-plane FMU intake: every archive is built here from in-test strings, never from downloaded binaries.

Each bad input must yield a rejected report with a stable code and a text that names the uploaded file, and
must never raise: intake runs on untrusted uploads.
"""

from __future__ import annotations

import ast
import hashlib
import io
import random
import zipfile
from pathlib import Path

import pytest

from validibot_pipelines.envelopes.base import Severity
from validibot_pipelines.intake import IntakeError, IntakeReport, sha256_file
from validibot_pipelines.intake.common import MiB
from validibot_pipelines.validators.fmi.intake import FmuCode, FmuLimits, check_fmu, read_capped

NAME = "model.fmu"

MD_FMI2 = """<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="2.0" modelName="BouncingBall"
    guid="{8c4e810f-3df3-4a00-8276-176fa3c9f000}" numberOfEventIndicators="1">
  <CoSimulation modelIdentifier="BouncingBall" canHandleVariableCommunicationStepSize="true"/>
  <ModelVariables>
    <ScalarVariable name="h" valueReference="0" causality="output" variability="continuous">
      <Real start="1"/>
    </ScalarVariable>
  </ModelVariables>
  <ModelStructure><Outputs><Unknown index="1"/></Outputs></ModelStructure>
</fmiModelDescription>
"""

MD_FMI3 = """<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="3.0" modelName="Dahlquist"
    instantiationToken="{221063D2-EF4A-45FE-B954-B5BFEEA9A59B}">
  <CoSimulation modelIdentifier="Dahlquist" canHandleVariableCommunicationStepSize="true"/>
  <ModelVariables>
    <Float64 name="time" valueReference="0" causality="independent" variability="continuous"/>
    <Float64 name="x" valueReference="1" causality="output" variability="continuous" start="1"/>
  </ModelVariables>
  <ModelStructure><Output valueReference="1"/></ModelStructure>
</fmiModelDescription>
"""

FAKE_SO = b"\x7fELF" + b"\x00not-a-real-library\x00" * 64


def build_fmu(
    members: dict[str, str | bytes],
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """ZIP ``members`` (name -> text or bytes) in memory, exactly as given (names are not sanitised)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def good_fmi2(**extra: str | bytes) -> dict[str, str | bytes]:
    return {"modelDescription.xml": MD_FMI2, "binaries/linux64/BouncingBall.so": FAKE_SO, **extra}


def md_fmi2_with(prolog: str = "", model_name: str = "BouncingBall", decl: str = "") -> str:
    """FMI 2 modelDescription with an optional XML declaration / DOCTYPE prolog and a custom modelName."""
    body = MD_FMI2.split("\n", 1)[1].replace('modelName="BouncingBall"', f'modelName="{model_name}"')
    return f"{decl}{prolog}{body}"


@pytest.fixture
def write(tmp_path: Path):
    """Write bytes to a temp file and return its path."""

    def _write(data: bytes, name: str = NAME) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return _write


def check(path: Path, limits: FmuLimits | None = None) -> IntakeReport:
    return check_fmu(path, NAME, limits) if limits else check_fmu(path, NAME)


def assert_rejected(report: IntakeReport, code: FmuCode, location: str | None = None) -> None:
    """The report is rejected with ``code``, and every finding names the uploaded file."""
    assert not report.accepted
    assert code in report.codes, report.findings
    for finding in report.findings:
        assert finding.text.startswith(f"{NAME}: "), finding.text
    hits = [f for f in report.findings if f.code == code]
    assert all(f.severity == Severity.ERROR for f in hits)
    if location is not None:
        assert location in {f.location for f in hits}, hits


# --- accepted ---------------------------------------------------------------------------------------------


def test_good_fmi2_is_accepted_with_facts(write) -> None:
    data = build_fmu(good_fmi2())
    report = check(write(data))

    assert report.accepted, report.findings
    assert report.findings == []
    assert report.file_name == NAME
    assert report.size_bytes == len(data)
    assert report.sha256 == hashlib.sha256(data).hexdigest()
    facts = report.facts
    assert facts["fmi_version"] == "2.0"
    assert facts["model_name"] == "BouncingBall"
    assert facts["guid"] == "{8c4e810f-3df3-4a00-8276-176fa3c9f000}"
    assert facts["model_identifier"] == "BouncingBall"
    assert facts["platforms"] == ["linux64"]
    assert facts["member_count"] == 2
    assert facts["total_uncompressed_bytes"] == len(MD_FMI2.encode()) + len(FAKE_SO)
    # The report is a plain pydantic model: it round-trips through JSON for the run record.
    assert IntakeReport.model_validate_json(report.model_dump_json()) == report


def test_good_fmi3_is_accepted(write) -> None:
    report = check(write(build_fmu({"modelDescription.xml": MD_FMI3, "binaries/x86_64-linux/Dahlquist.so": FAKE_SO})))
    assert report.accepted, report.findings
    assert report.facts["fmi_version"] == "3.0"
    assert report.facts["guid"] == "{221063D2-EF4A-45FE-B954-B5BFEEA9A59B}"
    assert report.facts["model_identifier"] == "Dahlquist"
    assert report.facts["platforms"] == ["x86_64-linux"]


def test_shared_libraries_for_other_platforms_are_normal(write) -> None:
    members = good_fmi2(**{"binaries/win64/BouncingBall.dll": FAKE_SO, "binaries/darwin64/BouncingBall.dylib": FAKE_SO})
    report = check(write(build_fmu(members)))
    assert report.accepted, report.findings
    assert report.facts["platforms"] == ["darwin64", "linux64", "win64"]


def test_no_linux_binary_is_only_a_warning(write) -> None:
    report = check(write(build_fmu({"modelDescription.xml": MD_FMI2, "binaries/win64/BouncingBall.dll": FAKE_SO})))
    assert report.accepted
    assert report.codes == [FmuCode.NO_BINARIES]
    assert report.warnings[0].text.startswith(f"{NAME}: ") and "win64" in report.warnings[0].text


def test_sha256_file_streams(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = b"validibot" * 300_000  # > 2 chunks of 1 MiB
    path.write_bytes(data)
    assert sha256_file(path) == (hashlib.sha256(data).hexdigest(), len(data))


# --- not an FMU / damaged ---------------------------------------------------------------------------------


def test_not_a_zip(write) -> None:
    report = check(write(MD_FMI2.encode()))
    assert_rejected(report, FmuCode.NOT_ZIP)
    assert report.sha256 == hashlib.sha256(MD_FMI2.encode()).hexdigest()


def test_empty_file_is_not_a_zip(write) -> None:
    assert_rejected(check(write(b"")), FmuCode.NOT_ZIP)


def test_truncated_zip(write) -> None:
    data = build_fmu(good_fmi2())
    report = check(write(data[: len(data) // 2]))
    assert_rejected(report, FmuCode.TRUNCATED)
    assert "cut short" in report.errors[0].text


def test_crc_error_in_member_is_truncated(write) -> None:
    data = bytearray(build_fmu(good_fmi2(), compression=zipfile.ZIP_STORED))
    at = bytes(data).index(b"not-a-real-library")
    data[at] ^= 0xFF  # damage the stored library's bytes; its CRC no longer matches
    assert_rejected(check(write(bytes(data))), FmuCode.TRUNCATED, location="binaries/linux64/BouncingBall.so")


def test_no_model_description(write) -> None:
    report = check(write(build_fmu({"binaries/linux64/BouncingBall.so": FAKE_SO})))
    assert_rejected(report, FmuCode.NO_MODEL_DESCRIPTION)


def test_model_description_in_subfolder_gets_a_hint(write) -> None:
    report = check(write(build_fmu({"BouncingBall/modelDescription.xml": MD_FMI2})))
    assert_rejected(report, FmuCode.NO_MODEL_DESCRIPTION)
    assert "BouncingBall/modelDescription.xml" in report.errors[0].text


def test_over_size_is_rejected_before_reading(write) -> None:
    data = build_fmu(good_fmi2())
    report = check(write(data), FmuLimits(max_bytes=100))
    assert_rejected(report, FmuCode.TOO_LARGE)
    assert report.codes == [FmuCode.TOO_LARGE]
    assert report.sha256 is None  # never read, not even to hash it
    assert report.size_bytes == len(data)


# --- XML --------------------------------------------------------------------------------------------------


def test_latin1_declaration_is_not_utf8(write) -> None:
    md = md_fmi2_with(decl='<?xml version="1.0" encoding="ISO-8859-1"?>\n', model_name="Wärme")
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md.encode("latin-1")}))))
    assert_rejected(report, FmuCode.XML_NOT_UTF8, location="modelDescription.xml")
    assert "ISO-8859-1" in report.errors[0].text


def test_non_utf8_bytes_under_utf8_declaration(write) -> None:
    md = md_fmi2_with(decl='<?xml version="1.0" encoding="UTF-8"?>\n', model_name="Wärme")
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md.encode("latin-1")}))))
    assert_rejected(report, FmuCode.XML_NOT_UTF8)
    assert "0xe4" in report.errors[0].text


def test_utf16_is_not_utf8(write) -> None:
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": MD_FMI2.encode("utf-16")}))))
    assert_rejected(report, FmuCode.XML_NOT_UTF8)


def test_xxe_external_entity(write) -> None:
    prolog = '<!DOCTYPE fmiModelDescription [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    md = md_fmi2_with(prolog=prolog, model_name="&xxe;")
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md}))))
    assert_rejected(report, FmuCode.XML_UNSAFE, location="modelDescription.xml")
    assert "XXE" in report.errors[0].text and "file:///etc/passwd" in report.errors[0].text
    assert "root:" not in report.model_dump_json()


def test_billion_laughs(write) -> None:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10)
    ]
    prolog = f"<!DOCTYPE fmiModelDescription [{''.join(entities)}]>\n"
    md = md_fmi2_with(prolog=prolog, model_name="&lol9;")
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md}))))
    assert_rejected(report, FmuCode.XML_UNSAFE)
    assert "entity expansion" in report.errors[0].text


def test_plain_doctype_is_refused(write) -> None:
    md = md_fmi2_with(prolog="<!DOCTYPE fmiModelDescription>\n")
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md}))))
    assert_rejected(report, FmuCode.XML_UNSAFE)
    assert "DTD" in report.errors[0].text


@pytest.mark.parametrize(
    ("md", "needle"),
    [
        ("<fmiModelDescription fmiVersion='2.0'", "not well-formed"),
        ("<?xml version='1.0'?><modelDescription fmiVersion='2.0'/>", "<modelDescription>"),
        (MD_FMI2.replace('fmiVersion="2.0" ', ""), "fmiVersion"),
        (MD_FMI2.replace('guid="{8c4e810f-3df3-4a00-8276-176fa3c9f000}"', ""), "guid"),
        (MD_FMI3.replace('instantiationToken="{221063D2-EF4A-45FE-B954-B5BFEEA9A59B}"', ""), "instantiationToken"),
        (MD_FMI2.replace('modelName="BouncingBall"', ""), "modelName"),
        (MD_FMI2.replace('modelIdentifier="BouncingBall"', 'modelIdentifier="../../tmp/x"'), "C identifier"),
    ],
    ids=["not-well-formed", "wrong-root", "no-version", "no-guid", "no-token", "no-model-name", "path-identifier"],
)
def test_invalid_model_description(write, md: str, needle: str) -> None:
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md}))))
    assert_rejected(report, FmuCode.XML_INVALID, location="modelDescription.xml")
    assert any(needle in f.text for f in report.errors), report.errors


def test_fmi1_is_unsupported(write) -> None:
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": MD_FMI2.replace('"2.0"', '"1.0"')}))))
    assert_rejected(report, FmuCode.UNSUPPORTED_FMI_VERSION)


@pytest.mark.parametrize("md", [MD_FMI2, MD_FMI3], ids=["fmi2", "fmi3"])
def test_model_exchange_only_is_accepted(write, md: str) -> None:
    md = md.replace("<CoSimulation", "<ModelExchange")
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md}))))
    assert not report.errors, report.errors


def test_scheduled_execution_only_is_refused_saying_why(write) -> None:
    md = MD_FMI3.replace("<CoSimulation", "<ScheduledExecution")
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md}))))
    assert_rejected(report, FmuCode.INTERFACE_UNSUPPORTED)
    assert "Scheduled Execution" in report.errors[0].text and "scheduler" in report.errors[0].text


def test_no_interface_at_all_is_refused(write) -> None:
    md = MD_FMI2.replace("<CoSimulation", "<Nothing")
    report = check(write(build_fmu(good_fmi2(**{"modelDescription.xml": md}))))
    assert_rejected(report, FmuCode.NO_INTERFACE)


# --- member paths and kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", "/etc/x", "resources/../../evil.so", "C:/Windows/evil.txt", "resources\\..\\evil.txt"],
    ids=["dotdot", "absolute", "nested-dotdot", "drive-letter", "backslash"],
)
def test_unsafe_member_paths(write, member: str) -> None:
    report = check(write(build_fmu(good_fmi2(**{member: "pwned"}))))
    assert_rejected(report, FmuCode.UNSAFE_PATH, location=member)
    assert f"'{member}'" in report.errors[0].text
    assert "relative paths only" in report.errors[0].text


def test_zip_slip_text_names_file_problem_and_fix(write) -> None:
    report = check(write(build_fmu(good_fmi2(**{"../evil.so": FAKE_SO}))))
    (finding,) = report.errors
    assert finding.text == (
        f"{NAME}: member '../evil.so' escapes the archive (zip-slip) through a '..' component; "
        "rebuild the FMU with relative paths only"
    )


def test_symlink_member_is_unsafe(write) -> None:
    buf = io.BytesIO(build_fmu(good_fmi2()))
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("resources/link")
        info.external_attr = (0o120777 << 16) | 0
        zf.writestr(info, "/etc/passwd")
    assert_rejected(check(write(buf.getvalue())), FmuCode.UNSAFE_PATH, location="resources/link")


@pytest.mark.parametrize("member", ["binaries/linux64/setup.exe", "resources/INSTALL.SH", "run.bat", "go.Cmd"])
def test_banned_members(write, member: str) -> None:
    report = check(write(build_fmu(good_fmi2(**{member: "echo pwned"}))))
    assert_rejected(report, FmuCode.BANNED_MEMBER, location=member)


def test_duplicate_member(write) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name, content in good_fmi2().items():
            zf.writestr(name, content)
        zf.writestr("modelDescription.xml", MD_FMI3)
    assert_rejected(check(write(buf.getvalue())), FmuCode.DUPLICATE_MEMBER, location="modelDescription.xml")


def test_identical_duplicate_members_are_a_warning_not_a_refusal(write) -> None:
    """The Modelica Reference FMUs' own CMake build writes the extra/ folder twice, byte for byte."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for name, content in good_fmi2().items():
            zf.writestr(name, content)
        for _ in range(2):
            zf.writestr("extra/org.example/notes.txt", "same bytes")
    report = check(write(buf.getvalue()))
    assert not report.errors, report.errors
    assert any(f.code == FmuCode.DUPLICATE_MEMBER and "identical" in f.text for f in report.findings)


def test_too_many_members(write) -> None:
    members = good_fmi2(**{f"resources/{i}.txt": "" for i in range(30)})
    report = check(write(build_fmu(members)), FmuLimits(max_members=10))
    assert_rejected(report, FmuCode.TOO_MANY_MEMBERS)
    assert "32 members" in report.errors[0].text


def test_findings_per_code_are_capped(write) -> None:
    members = good_fmi2(**{f"../evil{i}.txt": "" for i in range(50)})
    report = check(write(build_fmu(members)))
    unsafe = [f for f in report.findings if f.code == FmuCode.UNSAFE_PATH]
    assert len(unsafe) == 21  # 20 shown + one summary
    assert "30 more FMU_UNSAFE_PATH" in unsafe[-1].text


# --- zip bombs --------------------------------------------------------------------------------------------


def test_zip_bomb_ratio_from_central_directory(write) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in good_fmi2().items():
            zf.writestr(name, content)
        zeros = bytes(MiB)
        with zf.open("resources/zeros.bin", "w") as member:  # streamed: never 200 MB in memory
            for _ in range(200):
                member.write(zeros)
    data = buf.getvalue()
    assert len(data) < 1 * MiB

    report = check(write(data))
    assert_rejected(report, FmuCode.ZIP_BOMB, location="resources/zeros.bin")
    bomb = next(f for f in report.errors if f.code == FmuCode.ZIP_BOMB)
    assert "zip bomb" in bomb.text and "100x limit" in bomb.text
    assert report.facts["total_uncompressed_bytes"] > 200 * 1000 * 1000
    assert report.facts["compression_ratio"] > 100


def test_zip_bomb_total_uncompressed_cap(write) -> None:
    report = check(write(build_fmu(good_fmi2())), FmuLimits(max_uncompressed_bytes=1000))
    assert_rejected(report, FmuCode.ZIP_BOMB)
    assert "uncompressed content" in report.errors[0].text


def test_model_description_declared_over_read_cap(write) -> None:
    report = check(write(build_fmu(good_fmi2())), FmuLimits(max_model_description_bytes=100))
    assert_rejected(report, FmuCode.ZIP_BOMB, location="modelDescription.xml")


def test_read_capped_counts_real_output_not_declared_size() -> None:
    class Endless(io.RawIOBase):
        """A stream that never ends, like an entry whose declared size lies."""

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            b[:] = b"\x00" * len(b)
            return len(b)

    assert read_capped(Endless(), cap=10 * MiB, chunk_bytes=MiB) is None
    assert read_capped(io.BytesIO(b"abc"), cap=3) == b"abc"
    assert read_capped(io.BytesIO(b"abcd"), cap=3) is None


def test_damaged_archives_never_raise(write) -> None:
    """Flip bytes all over a good FMU (deterministically): intake must always answer with a report."""
    good = build_fmu(good_fmi2())
    rng = random.Random(1234)
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        report = check(write(bytes(data)))
        assert all(f.text.startswith(f"{NAME}: ") for f in report.findings)
        assert report.accepted == (not report.errors)


# --- contract ---------------------------------------------------------------------------------------------


def test_missing_staged_file_is_a_system_fault(tmp_path: Path) -> None:
    with pytest.raises(IntakeError):
        check_fmu(tmp_path / "nope.fmu", NAME)


def test_report_cannot_be_accepted_with_errors() -> None:
    with pytest.raises(ValueError, match="cannot be accepted"):
        IntakeReport(
            file_name=NAME,
            size_bytes=1,
            accepted=True,
            findings=[{"severity": "ERROR", "code": "FMU_NOT_ZIP", "text": f"{NAME}: x"}],
        )


def test_intake_never_imports_dagster_or_native_loaders() -> None:
    """Intake runs on untrusted uploads in the control plane: bytes only, no dagster, no ctypes/fmpy."""
    package = Path(__file__).resolve().parents[1] / "validibot_pipelines" / "intake"
    forbidden = {"dagster", "ctypes", "fmpy", "cffi"}
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & forbidden, (source.name, names)
