"""The XML validator as a user runs it: through Dagster (the landing zone, its asset group and checks), the CLI,
and the Modal and Cloud Run stand-ins — good models, bad ones and hostile ones, all built from strings here.

(The worker's sandboxed lxml child and intake's parser are tested in ``test_xml_validator_core.py``; the Docker
image in ``test_docker_backend.py``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backend_helpers import cloudrun_stand_in, drain, instance_in, latest, merged_checks, merged_outputs
from tests.conftest import Pipeline
from validibot_pipelines.definitions import build_defs
from validibot_pipelines.validators.xml.validator import SAMPLES_DIR

CLI = [sys.executable, "-m", "validibot_pipelines.cli"]
GOOD = (SAMPLES_DIR / "building.xml").read_text()
XSD = (SAMPLES_DIR / "building.xsd").read_text()
BAD = GOOD.replace("<Area>1200.5</Area>", "<Area>large</Area>")
SPEC = "xsd: building.xsd\nassertions:\n  - {name: clean, expr: 'o.error_count == 0'}\n" \
       "  - {name: campus, expr: \"p.root_element == 'Campus'\"}\n"
LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n<Campus>&lol2;</Campus>\n')


def _drop(p: Pipeline, tmp_path: Path, name: str, text: str, spec: str | None = SPEC, xsd: bool = True) -> None:
    if xsd:
        (tmp_path / "building.xsd").write_text(XSD)
        p.drop(tmp_path / "building.xsd")
    (tmp_path / name).write_text(text)
    p.drop(tmp_path / name, spec=spec)


def _only(outcomes: list) -> object:
    assert len(outcomes) == 1, [(o.source_uri, o.checks) for o in outcomes]
    return outcomes[0]


def test_dagster_validates_a_good_model_and_shows_its_facts(pipeline: Pipeline, tmp_path: Path) -> None:
    _drop(pipeline, tmp_path, "campus.xml", GOOD)
    outcome = _only(pipeline.tick())
    assert outcome.success, outcome.checks
    assert outcome.checks["intake_accepted"][0] and outcome.checks["schema_valid"] == (True, "success")
    assert outcome.checks["cel_assertions"] == (True, "2/2 assertions passed")
    validation = outcome.outputs["xml_schema_validation"]
    assert validation["outputs"]["valid"] and validation["outputs"]["element_count"] == 5
    meta = latest(pipeline, "xml_schema_validation", outcome.partition_key).metadata
    assert meta["root_element"].value == "Campus" and meta["error_count"].value == 0
    assert meta["backend"].value == "local"
    assert pipeline.instance.get_dynamic_partitions("xml_models") == [outcome.partition_key]


def test_dagster_strict_mode_fails_a_violation_naming_its_line(pipeline: Pipeline, tmp_path: Path) -> None:
    _drop(pipeline, tmp_path, "campus.xml", BAD)
    outcome = _only(pipeline.tick())
    validation = outcome.outputs["xml_schema_validation"]
    assert validation["status"] == "failed_validation"
    (violation,) = [m for m in validation["messages"] if m["code"] == "XML_SCHEMA_VIOLATION"]
    assert violation["severity"] == "ERROR" and violation["location"].startswith("line 4")
    assert "campus.xml" in violation["text"] and "'large' is not a valid value" in violation["text"]
    passed, description = outcome.checks["schema_valid"]
    assert not passed and "XML_SCHEMA_VIOLATION" in description
    meta = latest(pipeline, "xml_schema_validation", outcome.partition_key).metadata
    assert meta["findings"].value.records[0].data["line"] == 4


def test_lenient_mode_warns_and_the_assertions_judge(pipeline: Pipeline, tmp_path: Path) -> None:
    _drop(pipeline, tmp_path, "campus.xml", BAD, spec=SPEC.replace("xsd: building.xsd", "xsd: building.xsd\n"
                                                                     "validation_mode: lenient"))
    outcome = _only(pipeline.tick())
    validation = outcome.outputs["xml_schema_validation"]
    assert validation["status"] == "success"  # lenient: the violation is a warning ...
    assert [m["severity"] for m in validation["messages"] if m["code"] == "XML_SCHEMA_VIOLATION"] == ["WARNING"]
    assert outcome.checks["cel_assertions"] == (False, "1/2 assertions passed")  # ... o.error_count == 0 fails
    assert [a["name"] for a in validation["assertions"] if not a["passed"]] == ["clean"]


@pytest.mark.parametrize(("text", "spec", "xsd", "code"), [
    (LAUGHS, SPEC, True, "XML_DTD_FORBIDDEN"),
    ('<?xml version="1.0"?>\n<!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<Campus>&x;</Campus>\n',
     SPEC, True, "XML_DTD_FORBIDDEN"),
    ("PK\x03\x04 this is a zip, not XML", SPEC, True, "XML_NOT_WELL_FORMED"),
    (GOOD, SPEC, False, "XML_SCHEMA_MISSING"),
    (GOOD, "xsd: ../../etc/building.xsd\n", True, "SPEC_INVALID"),
], ids=["billion-laughs", "xxe", "not-xml", "no-schema", "schema-path-escape"])
def test_bad_input_is_refused_at_intake_and_never_launched(pipeline: Pipeline, tmp_path: Path, text: str,
                                                           spec: str, xsd: bool, code: str) -> None:
    _drop(pipeline, tmp_path, "campus.xml", text, spec=spec, xsd=xsd)
    outcome = _only(pipeline.tick())
    intake = outcome.outputs["xml_file"]
    assert intake["status"] == "failed_validation" and code in [f["code"] for f in intake["findings"]]
    assert all("campus.xml" in f["text"] for f in intake["findings"] if f["code"] == code)
    assert "xml_schema_validation" not in outcome.outputs  # blocking intake check: nothing ran
    assert not outcome.checks["intake_accepted"][0]


def test_hostile_schema_is_refused_at_intake(pipeline: Pipeline, tmp_path: Path) -> None:
    """An XSD is as untrusted as the model: entity declarations in it never reach lxml."""
    (tmp_path / "building.xsd").write_text(XSD.replace('<?xml version="1.0" encoding="UTF-8"?>', LAUGHS.split(
        "\n")[0] + '\n<!DOCTYPE xs:schema [<!ENTITY e "x">]>'))
    pipeline.drop(tmp_path / "building.xsd")
    _drop(pipeline, tmp_path, "campus.xml", GOOD, xsd=False)
    intake = _only(pipeline.tick()).outputs["xml_file"]
    assert intake["status"] == "failed_validation"
    assert [f["code"] for f in intake["findings"]] == ["XML_SCHEMA_DTD_FORBIDDEN"]


def test_a_schema_alone_in_the_landing_zone_is_no_stray_file(pipeline: Pipeline, tmp_path: Path) -> None:
    (tmp_path / "building.xsd").write_text(XSD)
    pipeline.drop(tmp_path / "building.xsd")
    assert pipeline.tick() == []  # a side file waits for its model; the sensor goes on
    _drop(pipeline, tmp_path, "campus.xml", GOOD, xsd=False)
    assert _only(pipeline.tick()).success


def test_builtin_fmi_schema_validates_a_model_description(pipeline: Pipeline, tmp_path: Path) -> None:
    """`xsd: fmi2` needs no upload: the worker validates against the FMI standard's schema fmpy ships."""
    md = ('<?xml version="1.0" encoding="UTF-8"?>\n<fmiModelDescription fmiVersion="2.0" modelName="m" '
          'guid="{0}" numberOfEventIndicators="0">\n  <CoSimulation modelIdentifier="m"/>\n'
          '  <ModelVariables>\n    <ScalarVariable name="x" valueReference="0" causality="output">'
          '<Real/></ScalarVariable>\n  </ModelVariables>\n  <ModelStructure><Outputs><Unknown index="1"/></Outputs>'
          '</ModelStructure>\n</fmiModelDescription>\n')
    _drop(pipeline, tmp_path, "modelDescription.xml", md, spec="xsd: fmi2\n", xsd=False)
    _drop(pipeline, tmp_path, "broken.xml", md.replace(' valueReference="0"', ""), spec="xsd: fmi2\n", xsd=False)
    by_name = {Path(o.source_uri).name: o for o in pipeline.tick()}
    assert by_name["modelDescription.xml"].outputs["xml_schema_validation"]["status"] == "success"
    broken = by_name["broken.xml"].outputs["xml_schema_validation"]
    assert broken["status"] == "failed_validation" and "valueReference" in json.dumps(broken["messages"])


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VALIDIBOT_HOME": str(tmp_path / "home")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_cli_validates_xml_with_its_spec_and_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "building.xsd").write_text(XSD)
    (tmp_path / "good.xml").write_text(GOOD)
    (tmp_path / "bad.xml").write_text(BAD)
    (tmp_path / "spec.yaml").write_text(SPEC)
    good = _cli(tmp_path, "validate", "good.xml", "--spec", "spec.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "xml: <Campus>" in good.stdout and "[PASS] clean" in good.stdout
    bad = _cli(tmp_path, "validate", "bad.xml", "--spec", "spec.yaml", "--json")
    assert bad.returncode == 1
    envelope = json.loads(bad.stdout)
    assert envelope["status"] == "failed_validation" and envelope["outputs"]["error_count"] == 1
    assert envelope["outputs"]["findings"][0]["line"] == 4
    (tmp_path / "laughs.xml").write_text(LAUGHS)
    hostile = _cli(tmp_path, "validate", "laughs.xml", "--spec", "spec.yaml")
    assert hostile.returncode == 1 and "XML_DTD_FORBIDDEN" in hostile.stdout and "Traceback" not in hostile.stderr


def test_cli_lists_the_registered_validators(tmp_path: Path) -> None:
    listed = _cli(tmp_path, "validators", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["xml"]["file_types"] == [".xml"] and rows["xml"]["job"] == "xml_validation"
    assert rows["xml"]["code_version"] == "xml@0.1.0" and rows["xml"]["steps"] == ["xml"]
    label = _cli(tmp_path, "validators", "--label", "xml")
    assert json.loads(label.stdout)["name"] == "xml"
    assert _cli(tmp_path, "validators", "--label", "nope").returncode == 2


@pytest.mark.parametrize("backend", ["modal", "cloudrun"])
def test_xml_on_modal_and_cloudrun(gcs_bucket: str, tmp_path: Path, backend: str) -> None:
    """The Modal stand-in finds validators/xml/modal_app.py by the app name; Cloud Run is collected by the
    output sensor — both give the local backend's verdict."""
    from validibot_pipelines.resources.backends.modal import ModalBackend

    resource = ModalBackend(app_name="validibot-xml", stand_in_volume_dir=str(tmp_path / "volumes")) \
        if backend == "modal" else cloudrun_stand_in("validibot-xml")
    with instance_in(tmp_path, "home") as instance:
        p = Pipeline(instance, f"{gcs_bucket}/landing", f"{gcs_bucket}/store")
        p.defs = build_defs(p.settings, xml_backend=resource)
        _drop(p, tmp_path, "campus.xml", BAD)
        outcomes = p.tick()
        outcomes += drain(p)
        (partition,) = p.instance.get_dynamic_partitions("xml_models")
        validation = merged_outputs(outcomes, partition)["xml_schema_validation"]
        assert validation["status"] == "failed_validation" and validation["outputs"]["error_count"] == 1
        assert not merged_checks(outcomes, partition)["schema_valid"][0]
        meta = latest(p, "xml_schema_validation", partition).metadata
        assert meta["backend"].value == backend
