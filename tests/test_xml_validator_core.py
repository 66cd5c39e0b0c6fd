"""XML validator core: defused control-plane intake of models and XSDs, and the sandboxed lxml worker.

Every fixture is written here from strings (a tiny gbXML-like schema, FMI 2.0 model descriptions); the worker
tests go through the container contract (:func:`validibot_pipelines.runtime.entrypoint.execute`) on a
``file://`` store, so staging, the sandbox and the written envelope are all the real ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from validibot_pipelines.envelopes import (
    ExecutionContext,
    InputEnvelope,
    InputFileItem,
    OutputEnvelope,
    Severity,
    Status,
    ValidatorRef,
)
from validibot_pipelines.intake.common import sha256_file
from validibot_pipelines.runtime import entrypoint
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.validators.xml.envelopes import XMLExpected, XMLInputs, XMLOutputs
from validibot_pipelines.validators.xml.intake import XmlCode, XmlLimits, check_schema_file, check_xml
from validibot_pipelines.validators.xml.worker import validate

GB = "http://www.gbxml.org/schema"
AREA_TYPE = '<xs:simpleType name="AreaType"><xs:restriction base="xs:decimal"><xs:minInclusive value="0"/>' \
            '</xs:restriction></xs:simpleType>'


def gb_schema(area: str = AREA_TYPE, head: str = "") -> str:
    """A gbXML-like XSD: gbXML > Campus+ > Building+ > Area (decimal >= 0), ids required."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{GB}" targetNamespace="{GB}"
           elementFormDefault="qualified">
  {head}
  {area}
  <xs:element name="gbXML">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="Campus" maxOccurs="unbounded">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="Building" maxOccurs="unbounded">
                <xs:complexType>
                  <xs:sequence><xs:element name="Area" type="AreaType"/></xs:sequence>
                  <xs:attribute name="id" type="xs:ID" use="required"/>
                </xs:complexType>
              </xs:element>
            </xs:sequence>
            <xs:attribute name="id" type="xs:ID" use="required"/>
          </xs:complexType>
        </xs:element>
      </xs:sequence>
      <xs:attribute name="version" type="xs:string" use="required"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


GOOD_GB = f"""<?xml version="1.0" encoding="UTF-8"?>
<gbXML xmlns="{GB}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="7.03"
       xsi:schemaLocation="{GB} gbxml.xsd">
  <Campus id="campus-1">
    <Building id="b1"><Area>120.5</Area></Building>
    <Building id="b2"><Area>80</Area></Building>
  </Campus>
</gbXML>
"""
# Line 5: Area is not a decimal; line 6: Building without its required id.
BAD_GB = f"""<?xml version="1.0" encoding="UTF-8"?>
<gbXML xmlns="{GB}" version="7.03">
  <Campus id="campus-1">
    <Building id="b1"><Area>80</Area></Building>
    <Building id="b2"><Area>big</Area></Building>
    <Building><Area>3</Area></Building>
  </Campus>
</gbXML>
"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>
"""
XXE = '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<r>&x;</r>\n'

FMI2_GOOD = """<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="2.0" modelName="lag" guid="{c4a30f17-86db-53b1-92b4-be91a6291b13}"
                     numberOfEventIndicators="0">
  <CoSimulation modelIdentifier="lag" canHandleVariableCommunicationStepSize="true"/>
  <DefaultExperiment startTime="0" stopTime="3" stepSize="0.01"/>
  <ModelVariables>
    <ScalarVariable name="u" valueReference="0" causality="input" variability="continuous">
      <Real start="1.0"/>
    </ScalarVariable>
    <ScalarVariable name="y" valueReference="1" causality="output" variability="continuous" initial="exact">
      <Real start="0.0"/>
    </ScalarVariable>
  </ModelVariables>
  <ModelStructure>
    <Outputs><Unknown index="2"/></Outputs>
  </ModelStructure>
</fmiModelDescription>
"""
FMI3_GOOD = """<?xml version="1.0" encoding="UTF-8"?>
<fmiModelDescription fmiVersion="3.0" modelName="m" instantiationToken="{c4a30f17-86db-53b1-92b4-be91a6291b13}">
  <CoSimulation modelIdentifier="m"/>
  <ModelVariables>
    <Float64 name="time" valueReference="0" causality="independent" variability="continuous"/>
    <Float64 name="y" valueReference="1" causality="output" variability="continuous"/>
  </ModelVariables>
  <ModelStructure><Output valueReference="1"/></ModelStructure>
</fmiModelDescription>
"""
# valueReference must be an unsigned int (line 7); causality "sideways" is not in the enumeration (line 10).
FMI2_BAD = FMI2_GOOD.replace('name="u" valueReference="0"', 'name="u" valueReference="minus one"').replace(
    'causality="output"', 'causality="sideways"')


# ---------------------------------------------------------------------------------------------- intake


def _write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_good_gbxml_is_accepted_with_facts(tmp_path: Path) -> None:
    report = check_xml(_write(tmp_path, "campus.xml", GOOD_GB), "campus.xml", XmlLimits())
    assert report.accepted, report.findings
    assert report.findings == []
    assert report.facts == {"root_element": "gbXML", "namespace": GB, "element_count": 6, "max_depth": 4,
                            "schema_location": "gbxml.xsd"}
    assert report.sha256 is not None and report.size_bytes == len(GOOD_GB.encode())


def test_no_namespace_schema_location_and_no_location(tmp_path: Path) -> None:
    xsi = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    report = check_xml(_write(tmp_path, "a.xml", f'<a {xsi} xsi:noNamespaceSchemaLocation="a.xsd"/>'), "a.xml",
                       XmlLimits())
    assert report.facts["schema_location"] == "a.xsd" and report.facts["namespace"] is None
    assert check_xml(_write(tmp_path, "b.xml", "<b/>"), "b.xml", XmlLimits()).facts["schema_location"] is None


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_entities_and_dtds_are_refused(tmp_path: Path, document: str) -> None:
    report = check_xml(_write(tmp_path, "evil.xml", document), "evil.xml", XmlLimits())
    assert not report.accepted
    assert report.codes == [XmlCode.DTD_FORBIDDEN]
    text = report.findings[0].text
    assert text.startswith("evil.xml: ")
    assert "remove the <!DOCTYPE> / entity declarations; XML models may not declare entities" in text
    assert "root:" not in text and "/bin/" not in text  # nothing of /etc/passwd was read


@pytest.mark.parametrize(("data", "words"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
    (b"PK\x03\x04\x14\x00\x00\x00", "ZIP archive"),
    (b"", "no element found"),
    ("<r>x</r>".encode("utf-16-le"), "without a byte-order mark"),
    (b'<?xml version="1.0" encoding="no-such-codec"?><a/>', "unknown encoding"),
    (b"<a>\xff\xfe</a>", "not well-formed XML"),
    (b"<a/><b/>", "junk after document element"),
])
def test_not_xml_is_not_well_formed(tmp_path: Path, data: bytes, words: str) -> None:
    report = check_xml(_write(tmp_path, "m.xml", data), "m.xml", XmlLimits())
    assert report.codes == [XmlCode.NOT_WELL_FORMED], report.findings
    assert words in report.findings[0].text and report.findings[0].text.startswith("m.xml: ")
    assert report.findings[0].location.startswith("line ")


def test_utf16_with_a_bom_is_fine(tmp_path: Path) -> None:
    report = check_xml(_write(tmp_path, "u.xml", "<r>é</r>".encode("utf-16")), "u.xml", XmlLimits())
    assert report.accepted and report.facts["root_element"] == "r"


def test_line_and_column_of_a_syntax_error(tmp_path: Path) -> None:
    report = check_xml(_write(tmp_path, "m.xml", "<a>\n<b>\n  <c></b></a>\n"), "m.xml", XmlLimits())
    finding = report.findings[0]
    assert finding.code == XmlCode.NOT_WELL_FORMED
    assert finding.location == "line 3, column 8"  # 1-based, like editors count
    assert "mismatched tag at line 3, column 8" in finding.text


def test_too_deep_and_too_many_elements(tmp_path: Path) -> None:
    deep = _write(tmp_path, "deep.xml", "<a>" * 50 + "</a>" * 50)
    report = check_xml(deep, "deep.xml", XmlLimits(max_depth=10))
    assert report.codes == [XmlCode.TOO_DEEP] and "more than 10 levels" in report.findings[0].text
    assert check_xml(deep, "deep.xml", XmlLimits(max_depth=50)).accepted
    many = _write(tmp_path, "many.xml", "<r>" + "<i/>" * 100 + "</r>")
    report = check_xml(many, "many.xml", XmlLimits(max_elements=20))
    assert report.codes == [XmlCode.TOO_MANY_ELEMENTS] and "more than 20 elements" in report.findings[0].text
    assert check_xml(many, "many.xml", XmlLimits(max_elements=101)).facts["element_count"] == 101


def test_oversize_is_refused_before_reading(tmp_path: Path) -> None:
    report = check_xml(_write(tmp_path, "big.xml", GOOD_GB), "big.xml", XmlLimits(max_bytes=100))
    assert report.codes == [XmlCode.TOO_LARGE] and report.sha256 is None


def test_a_large_flat_document_streams(tmp_path: Path) -> None:
    path = _write(tmp_path, "flat.xml", "<r>" + '<i a="1">text</i>' * 200_000 + "</r>")
    start = time.monotonic()
    report = check_xml(path, "flat.xml", XmlLimits())
    assert report.accepted and report.facts["element_count"] == 200_001 and report.facts["max_depth"] == 2
    assert time.monotonic() - start < 10


def test_schema_file_checks(tmp_path: Path) -> None:
    assert check_schema_file(_write(tmp_path, "gbxml.xsd", gb_schema()), "gbxml.xsd", 1 << 20) == []
    not_xsd = check_schema_file(_write(tmp_path, "model.xsd", GOOD_GB), "model.xsd", 1 << 20)
    assert [m.code for m in not_xsd] == [XmlCode.SCHEMA_INVALID]
    assert "is not an XSD (root element is 'gbXML'" in not_xsd[0].text and not_xsd[0].text.startswith("model.xsd: ")
    dtd = gb_schema().replace("<xs:schema", '<!DOCTYPE xs:schema [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
                              "<xs:schema", 1)
    assert [m.code for m in check_schema_file(_write(tmp_path, "d.xsd", dtd), "d.xsd", 1 << 20)] == [
        XmlCode.SCHEMA_DTD_FORBIDDEN]
    broken = check_schema_file(_write(tmp_path, "b.xsd", gb_schema()[:-30]), "b.xsd", 1 << 20)
    assert [m.code for m in broken] == [XmlCode.SCHEMA_INVALID] and broken[0].location
    assert [m.code for m in check_schema_file(tmp_path / "gbxml.xsd", "gbxml.xsd", 100)] == [
        XmlCode.SCHEMA_TOO_LARGE]
    remote = gb_schema(head='<xs:include schemaLocation="http://example.com/x.xsd"/>'
                            '<xs:include schemaLocation="../../etc/x.xsd"/><xs:include schemaLocation="ok.xsd"/>')
    found = check_schema_file(_write(tmp_path, "r.xsd", remote), "r.xsd", 1 << 20)
    assert [m.code for m in found] == [XmlCode.SCHEMA_INVALID] * 2
    assert "is a URL" in found[0].text and "'..'" in found[1].text and 'schemaLocation="x.xsd"' in found[1].text


# ---------------------------------------------------------------------------------------------- worker


@pytest.fixture
def xml_runner() -> None:
    """The entrypoint finds the "xml" runner through the registry (the validator's worker/RUNNERS)."""
    from validibot_pipelines.runtime.registry import runner_for

    assert runner_for("xml") is validate.run


def _item(root: str, tmp_path: Path, name: str, data: str | bytes, role: str) -> InputFileItem:
    path = tmp_path / "uploads" / role / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    uri = join_uri(root, "uploads", role, name)
    get_store(uri).upload_file(path, uri)
    digest, size = sha256_file(path)
    return InputFileItem(name=name, mime_type="application/xml", role=role, uri=uri, size_bytes=size, sha256=digest)


def run_xml(tmp_path: Path, model: str | bytes, schemas: dict[str, str] | None = None, schema_name: str = "gbxml.xsd",
            **inputs: object) -> OutputEnvelope:
    """One XML validation through the container contract; returns the output envelope it wrote."""
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    root = store.resolve().as_uri()
    run_id = f"xml-{time.monotonic_ns()}"
    bundle = join_uri(root, "runs", run_id)
    schema_items = [_item(root, tmp_path, name, text, "schema") for name, text in (schemas or {}).items()]
    envelope = InputEnvelope(
        run_id=run_id, validator=ValidatorRef(id="xml", type="xml", version="0"),
        input_files=[_item(root, tmp_path, "campus.xml", model, "primary-model"), *schema_items[:1]],
        resource_files=schema_items[1:],  # schemas may come in either list
        inputs=XMLInputs(schema_name=schema_name, **inputs).model_dump(mode="json"),
        context=ExecutionContext(callback_id=run_id, execution_bundle_uri=bundle, timeout_seconds=120,
                                 expected_output_uri=join_uri(bundle, "output.json")))
    uri = join_uri(bundle, "input.json")
    get_store(uri).write_bytes(uri, envelope.model_dump_json().encode())
    return entrypoint.execute(uri, log=lambda _msg: None)


def _codes(out: OutputEnvelope) -> list[str]:
    return [m.code for m in out.messages]


uses_runner = pytest.mark.usefixtures("xml_runner")


@uses_runner
def test_valid_model_succeeds(tmp_path: Path) -> None:
    out = run_xml(tmp_path, GOOD_GB, {"gbxml.xsd": gb_schema()})
    assert out.status == Status.SUCCESS, out.messages
    assert out.messages == []
    outputs = XMLOutputs.model_validate(out.outputs)
    assert (outputs.valid, outputs.root_element, outputs.namespace, outputs.element_count) == (True, "gbXML", GB, 6)
    assert outputs.error_count == 0 and outputs.findings == [] and outputs.validation_mode == "strict"
    metrics = {m.name: m.value for m in out.metrics}
    assert metrics["error_count"] == 0 and metrics["warning_count"] == 0 and metrics["element_count"] == 6
    assert metrics["execution_seconds"] > 0


@uses_runner
def test_invalid_model_fails_in_strict_mode_with_lines(tmp_path: Path) -> None:
    out = run_xml(tmp_path, BAD_GB, {"gbxml.xsd": gb_schema()})
    assert out.status == Status.FAILED_VALIDATION
    assert _codes(out) == ["XML_SCHEMA_VIOLATION", "XML_SCHEMA_VIOLATION"]
    assert all(m.severity == Severity.ERROR for m in out.messages)
    area, building = out.messages
    assert area.location.startswith("line 5, column ") and area.text.startswith(f"campus.xml: {area.location}: ")
    assert "'big' is not a valid value" in area.text
    assert building.location.startswith("line 6, column ") and "id" in building.text
    outputs = XMLOutputs.model_validate(out.outputs)
    assert not outputs.valid and outputs.error_count == 2 and not outputs.findings_truncated
    assert outputs.findings[0].path and outputs.findings[0].path.startswith("/")


@uses_runner
def test_lenient_mode_turns_violations_into_warnings(tmp_path: Path) -> None:
    out = run_xml(tmp_path, BAD_GB, {"gbxml.xsd": gb_schema()}, validation_mode="lenient")
    assert out.status == Status.SUCCESS
    assert _codes(out) == ["XML_SCHEMA_VIOLATION", "XML_SCHEMA_VIOLATION"]
    assert all(m.severity == Severity.WARNING for m in out.messages)
    assert XMLOutputs.model_validate(out.outputs).valid is False


@uses_runner
def test_not_well_formed_fails_even_in_lenient_mode(tmp_path: Path) -> None:
    out = run_xml(tmp_path, "<gbXML>\n  <Campus>\n</gbXML>\n", {"gbxml.xsd": gb_schema()}, validation_mode="lenient")
    assert out.status == Status.FAILED_VALIDATION
    assert set(_codes(out)) == {"XML_NOT_WELL_FORMED"}
    assert out.messages[0].severity == Severity.ERROR and out.messages[0].location.startswith("line 3, column ")


@uses_runner
def test_findings_are_capped_at_max_findings(tmp_path: Path) -> None:
    buildings = "".join(f'<Building id="b{i}"><Area>-{i + 1}</Area></Building>' for i in range(7))
    model = f'<gbXML xmlns="{GB}" version="1"><Campus id="c">{buildings}</Campus></gbXML>'
    out = run_xml(tmp_path, model, {"gbxml.xsd": gb_schema()}, max_findings=3)
    assert out.status == Status.FAILED_VALIDATION
    assert _codes(out) == ["XML_SCHEMA_VIOLATION"] * 3 + ["XML_FINDINGS_TRUNCATED"]
    assert "4 more problem(s) not listed" in out.messages[-1].text
    outputs = XMLOutputs.model_validate(out.outputs)
    assert outputs.error_count == 7 and len(outputs.findings) == 3 and outputs.findings_truncated


@uses_runner
@pytest.mark.parametrize(("schema", "words"), [
    (gb_schema()[:-40], "not well-formed"),
    (gb_schema(area=""), "AreaType"),  # a type it uses but never defines
    (GOOD_GB, "not a schema"),
], ids=["not-xml", "undefined-type", "not-an-xsd"])
def test_unusable_schema_is_schema_invalid(tmp_path: Path, schema: str, words: str) -> None:
    out = run_xml(tmp_path, GOOD_GB, {"gbxml.xsd": schema}, validation_mode="lenient")
    assert out.status == Status.FAILED_VALIDATION
    assert _codes(out) == ["XML_SCHEMA_INVALID"], out.messages
    assert out.messages[0].text.startswith("gbxml.xsd: the schema cannot be used: ") and words in out.messages[0].text


@uses_runner
def test_remote_local_and_climbing_includes_are_refused(tmp_path: Path) -> None:
    for location in ("http://example.com/x.xsd", "file:///etc/passwd", "/etc/passwd", "../model.xml",
                     "sub/types.xsd"):
        start = time.monotonic()
        out = run_xml(tmp_path, GOOD_GB, {"gbxml.xsd": gb_schema(head=f'<xs:include schemaLocation="{location}"/>')})
        assert out.status == Status.FAILED_VALIDATION, location
        assert _codes(out) == ["XML_SCHEMA_INVALID"], (location, out.messages)
        assert f"'{location}'" in out.messages[0].text and "does not load" in out.messages[0].text
        assert time.monotonic() - start < 30  # nothing waited on a network


@uses_runner
def test_include_of_a_second_uploaded_schema(tmp_path: Path) -> None:
    types = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{GB}" targetNamespace="{GB}"
               elementFormDefault="qualified">{AREA_TYPE}</xs:schema>"""
    main = gb_schema(area="", head='<xs:include schemaLocation="types.xsd"/>')
    schemas = {"gbxml.xsd": main, "types.xsd": types}
    assert run_xml(tmp_path, GOOD_GB, schemas).status == Status.SUCCESS
    out = run_xml(tmp_path, BAD_GB, schemas)
    assert out.status == Status.FAILED_VALIDATION and _codes(out) == ["XML_SCHEMA_VIOLATION"] * 2
    schemas_reversed = {"types.xsd": types, "gbxml.xsd": main}  # the main schema in resource_files
    assert run_xml(tmp_path, GOOD_GB, schemas_reversed).status == Status.SUCCESS


@uses_runner
def test_missing_schema_names_the_fix(tmp_path: Path) -> None:
    out = run_xml(tmp_path, GOOD_GB, {"other.xsd": gb_schema()})
    assert out.status == Status.FAILED_VALIDATION and _codes(out) == ["XML_SCHEMA_MISSING"]
    text = out.messages[0].text
    assert "upload gbxml.xsd next to the model" in text and "set xsd: in the validation spec" in text


@uses_runner
def test_builtin_fmi2_schema(tmp_path: Path) -> None:
    good = run_xml(tmp_path, FMI2_GOOD, schema_name="fmi2")
    assert good.status == Status.SUCCESS, good.messages
    assert XMLOutputs.model_validate(good.outputs).root_element == "fmiModelDescription"
    bad = run_xml(tmp_path, FMI2_BAD, schema_name="fmi2")
    assert bad.status == Status.FAILED_VALIDATION
    assert _codes(bad) == ["XML_SCHEMA_VIOLATION", "XML_SCHEMA_VIOLATION"]
    assert [m.location.split(",")[0] for m in bad.messages] == ["line 7", "line 10"]
    assert "valueReference" in bad.messages[0].text and "causality" in bad.messages[1].text


@uses_runner
def test_builtin_fmi3_schema(tmp_path: Path) -> None:
    assert run_xml(tmp_path, FMI3_GOOD, schema_name="fmi3").status == Status.SUCCESS
    wrong_version = run_xml(tmp_path, FMI2_GOOD, schema_name="fmi3")
    assert wrong_version.status == Status.FAILED_VALIDATION
    assert any("instantiationToken" in m.text for m in wrong_version.messages)


def test_builtin_schema_folders_exist_without_importing_fmpy() -> None:
    code = ("import sys; from validibot_pipelines.validators.xml.worker import validate as v; "
            "print(v.builtin_schema_dir('fmi2').name, v.builtin_schema_dir('fmi3').name, "
            "'fmpy' in sys.modules, 'lxml' in sys.modules, 'dagster' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    assert out == ["fmi2", "fmi3", "False", "False", "False"]


def _hostile_child(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    """Replace the sandboxed child with ``python -c source SCRATCH`` (inline: only the scratch folder is visible)."""
    monkeypatch.setattr(validate, "child_command", lambda scratch: [sys.executable, "-c", source, str(scratch)])


@uses_runner
@pytest.mark.parametrize("written", [
    "garbage, not json",
    '{"well_formed": "yes"}',
    '{"well_formed": true, "schema_ok": true, "schema_error": null, "root_element": "x", "namespace": null, '
    '"element_count": 1, "error_count": 0, "warning_count": 0, "truncated": false, '
    '"errors": [{"line": 1, "column": 1, "level": "error", "message": "m", "path": null}]}',
], ids=["not-json", "wrong-shape", "inconsistent"])
def test_forged_child_result_is_result_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               written: str) -> None:
    _hostile_child(monkeypatch, "import pathlib, sys; "
                   f"pathlib.Path(sys.argv[1], 'result.json').write_text({written!r})")
    out = run_xml(tmp_path, GOOD_GB, {"gbxml.xsd": gb_schema()})
    assert out.status == Status.FAILED_VALIDATION and _codes(out) == ["XML_RESULT_INVALID"], out.messages
    assert out.outputs == {}


@uses_runner
@pytest.mark.parametrize(("root", "count", "seen"), [
    ("x", 1, True),  # a self-consistent "valid" answer about another document than intake read
    ("gbXML", 1, False),  # consistent, but "no error" while saying not well-formed
], ids=["other-document", "self-contradicting"])
def test_a_credible_looking_forged_verdict_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      root: str, count: int, seen: bool) -> None:
    """A compromised child can write any result.json; one that contradicts intake's parse or itself is refused."""
    forged = json.dumps({"well_formed": seen, "schema_ok": True, "schema_error": None, "root_element": root,
                         "namespace": None, "element_count": count, "error_count": 0, "warning_count": 0,
                         "truncated": False, "errors": []})
    _hostile_child(monkeypatch, f"import pathlib, sys; pathlib.Path(sys.argv[1], 'result.json').write_text({forged!r})")
    expected = XMLExpected(root_element="gbXML", namespace=GB, element_count=6)  # what intake read
    out = run_xml(tmp_path, GOOD_GB, {"gbxml.xsd": gb_schema()}, expected=expected)
    assert out.status == Status.FAILED_VALIDATION and _codes(out) == ["XML_RESULT_INVALID"], out.messages
    assert "not credible" in out.messages[0].text and out.outputs == {}


@uses_runner
def test_child_that_crashes_or_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hostile_child(monkeypatch, "import os; os.abort()")
    out = run_xml(tmp_path, GOOD_GB, {"gbxml.xsd": gb_schema()})
    assert out.status == Status.FAILED_VALIDATION and _codes(out) == ["XML_VALIDATOR_CRASHED"]
    assert "SIGABRT" in out.messages[0].text
    _hostile_child(monkeypatch, "import time; time.sleep(60)")
    start = time.monotonic()
    out = run_xml(tmp_path, GOOD_GB, {"gbxml.xsd": gb_schema()}, timeout_seconds=1)
    assert out.status == Status.FAILED_VALIDATION and _codes(out) == ["XML_TIMEOUT"]
    assert time.monotonic() - start < 20


@uses_runner
def test_an_encoding_libxml2_does_not_know_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """Python reads ``latin_1``, libxml2 does not: a finding naming the fix, no traceback, no sandbox path."""
    for text in ("", "<!-- caf\u00e9 -->"):  # pure ASCII: libxml2's parse error; Latin-1 bytes: its read error
        model = GOOD_GB.replace('encoding="UTF-8"?>', f'encoding="latin_1"?>{text}').encode("latin-1")
        out = run_xml(tmp_path, model, {"gbxml.xsd": gb_schema()})
        assert out.status == Status.FAILED_VALIDATION and _codes(out) == ["XML_NOT_WELL_FORMED"], out.messages
        message = out.messages[0].text
        assert "encoding" in message and "/tmp/" not in message and "Traceback" not in message


@uses_runner
def test_entities_reaching_the_worker_are_not_expanded(tmp_path: Path) -> None:
    """Intake refuses DTDs; a model that skipped it still gets no file read and no expansion from lxml."""
    schema = ('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="r">'
              '<xs:simpleType><xs:restriction base="xs:string"><xs:maxLength value="3"/></xs:restriction>'
              "</xs:simpleType></xs:element></xs:schema>")
    out = run_xml(tmp_path, XXE, {"r.xsd": schema}, schema_name="r.xsd")
    assert out.status in {Status.SUCCESS, Status.FAILED_VALIDATION}
    assert all("root:" not in m.text for m in out.messages)
    out = run_xml(tmp_path, BILLION_LAUGHS, {"r.xsd": schema}, schema_name="r.xsd")
    assert out.status in {Status.SUCCESS, Status.FAILED_VALIDATION}
    assert all("lollollol" not in m.text for m in out.messages)
