"""Validation spec parsing: the happy path, and that every mistake is reported with file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from validibot_pipelines.envelopes.base import Severity
from validibot_pipelines.spec import (
    MAX_EXPR_CHARS,
    Assertion,
    SpecError,
    ValidationSpec,
    load_spec,
    load_spec_file,
    sidecar_path,
)
from validibot_pipelines.validators.fmi.envelopes import SimulationSettings

SOURCE = "Feedthrough.fmu.validation.yaml"

VALID = """\
simulation: {start_time: 0, stop_time: 3, step_size: 0.01, tolerance: 1e-6}
inputs: {u: 3.0, k: 1, enabled: true, mode: fast}
outputs: [y]
weather: USA_IL_Chicago-OHare.Intl.AP.725300_TMY3.epw
timestep_per_hour: 4
assertions:
  - name: settles_near_gain
    expr: "o.y > 5.5 && o.y < 6.1"
    severity: warning
    message: "y should settle near k*u"
  - name: positive
    expr: o.y > 0
"""


def _error(text: str | bytes) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(text, SOURCE)
    message = str(info.value)
    assert SOURCE in message, "every spec error must name the file"
    return message


def test_valid_spec_parses_every_field() -> None:
    spec = load_spec(VALID, SOURCE)

    assert spec.simulation == SimulationSettings(start_time=0, stop_time=3, step_size=0.01, tolerance=1e-6)
    assert spec.inputs == {"u": 3.0, "k": 1, "enabled": True, "mode": "fast"}
    assert type(spec.inputs["k"]) is int and type(spec.inputs["u"]) is float
    assert spec.outputs == ["y"]
    assert spec.weather == "USA_IL_Chicago-OHare.Intl.AP.725300_TMY3.epw"
    assert spec.timestep_per_hour == 4
    first, second = spec.assertions
    assert (first.name, first.expr, first.severity, first.message) == (
        "settles_near_gain",
        "o.y > 5.5 && o.y < 6.1",
        Severity.WARNING,
        "y should settle near k*u",
    )
    assert second.severity is Severity.ERROR and second.message is None


def test_simulation_block_is_the_fmi_envelope_type() -> None:
    # The worker receives spec.simulation unchanged, so it must be the envelope's own model.
    assert isinstance(load_spec(VALID, SOURCE).simulation, SimulationSettings)


def test_exponent_without_dot_is_a_number_not_a_string() -> None:
    # Plain PyYAML reads 1e-6 as the string "1e-6"; an FMU input would then receive text.
    spec = load_spec("inputs: {gain: 1e3, tiny: -2.5E-4}\nsimulation: {tolerance: 1e-6}\n", SOURCE)
    assert spec.inputs == {"gain": 1000.0, "tiny": -2.5e-4}
    assert spec.simulation.tolerance == 1e-6


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", None, b""])
def test_empty_document_is_empty_spec(text: str | bytes | None) -> None:
    spec = load_spec(text, SOURCE)
    assert spec == ValidationSpec()
    assert spec.assertions == [] and spec.outputs is None and spec.simulation.stop_time is None


def test_bytes_with_bom_are_accepted() -> None:
    assert load_spec("\ufeffoutputs: [y]\n".encode(), SOURCE).outputs == ["y"]


def test_non_utf8_bytes_are_a_spec_error() -> None:
    assert "UTF-8" in _error(b"outputs: [\xff]\n")


def test_yaml_syntax_error_names_file_line_and_column() -> None:
    message = _error("outputs: [y]\nsimulation: {stop_time: 3\nassertions: []\n")
    assert "invalid YAML at line 3, column 11" in message
    assert "started at line 2" in message  # where the unclosed '{' was opened
    assert "docs/usage.md 'Validation specs'" in message


def test_tab_indentation_is_reported_with_position() -> None:
    assert "line 2, column 1" in _error("outputs:\n\t- y\n")


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    message = _error("outputs: [y]\nsimulaton: {stop_time: 1}\n")
    assert "line 2: simulaton: unknown key" in message
    assert "did you mean 'simulation'?" in message


def test_unknown_nested_key_lists_allowed_keys() -> None:
    message = _error("simulation:\n  stop_tme: 3\n")
    allowed = "start_time, stop_time, step_size, tolerance, interface, solver"
    assert f"simulation.stop_tme: unknown key (allowed: {allowed})" in message
    assert "line 2" in message


def test_unknown_assertion_key_is_rejected() -> None:
    message = _error("assertions:\n  - name: a\n    expr: o.y > 0\n    sevrity: INFO\n")
    assert "line 4: assertions.0.sevrity: unknown key" in message
    assert "did you mean 'severity'?" in message


def test_wrong_types_list_every_problem_with_path() -> None:
    message = _error("timestep_per_hour: often\noutputs: y\ninputs: {u: [1, 2]}\n")
    assert "(3 problems)" in message
    assert "line 1: timestep_per_hour:" in message
    assert "line 2: outputs:" in message
    assert "line 3: inputs.u: must be one of: a number, true/false, text; got a list" in message


@pytest.mark.parametrize(
    ("simulation", "fragment"),
    [
        ("{start_time: 2, stop_time: 1}", "stop_time (1.0) must be greater than start_time (2.0)"),
        ("{start_time: 1, stop_time: 1}", "must be greater than start_time"),
        ("{stop_time: 0}", "must be greater than start_time"),
        ("{step_size: 0}", "simulation.step_size: Input should be greater than 0"),
        ("{tolerance: -1e-6}", "simulation.tolerance: Input should be greater than 0"),
        ("{start_time: -1}", "simulation.start_time: Input should be greater than or equal to 0"),
    ],
)
def test_simulation_bounds(simulation: str, fragment: str) -> None:
    assert fragment in _error(f"simulation: {simulation}\n")


def test_duplicate_assertion_names_point_at_the_second() -> None:
    text = (
        "assertions:\n"
        "  - name: a\n    expr: o.y > 0\n"
        "  - name: b\n    expr: o.y > 1\n"
        "  - name: a\n    expr: o.y > 2\n"
    )
    message = _error(text)
    assert "duplicate assertion name 'a'" in message
    assert "line 6" in message


def test_duplicate_yaml_keys_are_an_error_not_last_one_wins() -> None:
    message = _error("outputs: [y]\noutputs: [z]\n")
    assert "duplicate key 'outputs' (first on line 1)" in message
    assert "line 2" in message


def test_yaml_aliases_are_refused() -> None:
    assert "aliases" in _error("outputs: &o [y]\nassertions: *o\n")


def test_top_level_must_be_a_mapping() -> None:
    assert "top level must be a mapping" in _error("- y\n- z\n")


@pytest.mark.parametrize(("written", "expected"), [("info", Severity.INFO), ("Warning", Severity.WARNING),
                                                   (" ERROR ", Severity.ERROR)])
def test_severity_is_case_insensitive(written: str, expected: Severity) -> None:
    spec = load_spec(f"assertions:\n  - name: a\n    expr: 'true'\n    severity: '{written}'\n", SOURCE)
    assert spec.assertions[0].severity is expected


def test_bad_severity_lists_the_choices() -> None:
    message = _error("assertions:\n  - name: a\n    expr: 'true'\n    severity: fatal\n")
    assert "line 4: assertions.0.severity: severity must be one of INFO, WARNING, ERROR" in message
    assert "'fatal'" in message


def test_expression_length_limit() -> None:
    Assertion(name="a", expr="x" * MAX_EXPR_CHARS)
    message = _error(f"assertions:\n  - name: a\n    expr: '{'x' * (MAX_EXPR_CHARS + 1)}'\n")
    assert f"at most {MAX_EXPR_CHARS} characters" in message


def test_assertion_names_must_be_check_safe() -> None:
    assert "assertions.0.name" in _error("assertions:\n  - name: settles near gain\n    expr: 'true'\n")
    with pytest.raises(ValidationError):
        Assertion(name="", expr="true")


@pytest.mark.parametrize("value", [7, 0, 61])
def test_timestep_per_hour_must_divide_the_hour(value: int) -> None:
    assert "timestep_per_hour" in _error(f"timestep_per_hour: {value}\n")


def test_timestep_per_hour_accepts_divisors() -> None:
    assert load_spec("timestep_per_hour: 60\n", SOURCE).timestep_per_hour == 60


def test_round_trip_through_yaml() -> None:
    spec = load_spec(VALID, SOURCE)
    assert load_spec(spec.to_yaml(), "round-trip") == spec
    assert ValidationSpec.model_validate(spec.model_dump()) == spec
    assert ValidationSpec().to_yaml() == ""


def test_sidecar_naming_and_file_loading(tmp_path: Path) -> None:
    model = tmp_path / "Feedthrough.fmu"
    assert sidecar_path(model) == tmp_path / "Feedthrough.fmu.validation.yaml"
    sidecar_path(model).write_text(VALID)
    assert load_spec_file(sidecar_path(model)).outputs == ["y"]
    with pytest.raises(SpecError, match="cannot read validation spec"):
        load_spec_file(tmp_path / "missing.validation.yaml")
