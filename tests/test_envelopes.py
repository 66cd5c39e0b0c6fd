"""Envelope schemas: field names from the design, clear rejection of bad envelopes, JSON Schema export."""

from __future__ import annotations

import json

import pytest

from validibot_pipelines.envelopes import InputFileItem, load_input_envelope
from validibot_pipelines.envelopes.base import EnvelopeError
from validibot_pipelines.envelopes.schema import export_schemas
from validibot_pipelines.validators.fmi.envelopes import FMISimulationInputs

GOOD = {
    "run_id": "r1", "validator": {"id": "fmi-simulation", "type": "fmi-simulation", "version": "1"},
    "input_files": [{"name": "m.fmu", "mime_type": "application/vnd.fmi.fmu", "role": "fmu", "uri": "file:///m.fmu",
                     "size_bytes": 3, "sha256": "a" * 64}],
    "context": {"callback_id": "c", "execution_bundle_uri": "file:///b", "expected_output_uri": "file:///b/o.json"},
}


def test_good_envelope_defaults():
    env = load_input_envelope(json.dumps(GOOD))
    assert env.schema_version == "validibot.input.v1"
    assert env.context.timeout_seconds == 3600 and env.org.id == "local"


@pytest.mark.parametrize("name", ["../x.fmu", "a/b.fmu", "a\\b", ".", "..", "x\x00y", ""])
def test_unsafe_file_names_rejected(name):
    with pytest.raises(ValueError, match="safe file name|at least"):
        InputFileItem(name=name, mime_type="x", role="fmu", uri="file:///x", size_bytes=0, sha256="0" * 64)


def test_bad_envelope_error_names_every_field():
    bad = {**GOOD, "input_files": [{**GOOD["input_files"][0], "sha256": "XYZ"}], "extra": 1}
    with pytest.raises(EnvelopeError) as err:
        load_input_envelope(json.dumps(bad), where="gs://b/in.json")
    text = str(err.value)
    assert "gs://b/in.json" in text and "input_files.0.sha256" in text and "extra" in text


def test_not_json():
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        load_input_envelope("{nope")


def test_simulation_settings_rules():
    with pytest.raises(ValueError, match="stop_time"):
        FMISimulationInputs.model_validate({"simulation": {"start_time": 2, "stop_time": 1}})
    with pytest.raises(ValueError):
        FMISimulationInputs.model_validate({"simulation": {"start_time": -1}})


def test_json_schema_export(tmp_path):
    paths = export_schemas(tmp_path)
    names = sorted(p.name for p in paths)
    assert "validibot.input.v1.json" in names and "validibot.output.v1.json" in names
    schema = json.loads((tmp_path / "validibot.output.v1.json").read_text())
    assert set(schema["properties"]) >= {"run_id", "validator", "status", "timing", "messages", "metrics",
                                         "artifacts", "outputs", "input_envelope_sha256"}
