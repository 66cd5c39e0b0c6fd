"""Specs that mean what they say: keys of another validator, non-finite numbers and bool arithmetic in CEL are
refused with a message naming the key (or expression), the file and the fix — never silently defaulted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from validibot_pipelines.assertions import evaluate_assertions
from validibot_pipelines.spec import KEYS_BY_KIND, Assertion, SpecError, load_spec


def _error(text: str, kind: str | None = "fmi", source: str = "lag.fmu.validation.yaml") -> str:
    with pytest.raises(SpecError) as info:
        load_spec(text, source, kind)
    return str(info.value)


@pytest.mark.parametrize(("kind", "text", "key"), [
    ("fmi", "weather: Chicago\n", "weather"),
    ("fmi", "quality: {sicn_min: 0.2}\n", "quality"),
    ("energyplus", "simulation: {stop_time: 3}\n", "simulation"),
    ("energyplus", "meshing: {max_elements: 10}\n", "meshing"),
    ("mesh", "inputs: {u: 1}\n", "inputs"),
    ("mesh", "timestep_per_hour: 4\n", "timestep_per_hour"),
])
def test_a_key_of_another_validator_is_refused_naming_key_file_and_allowed(kind, text, key):  # noqa: ANN001
    message = _error(text, kind)
    assert message.startswith("lag.fmu.validation.yaml: ")
    assert f"'{key}'" in message and "remove it" in message
    assert ", ".join(KEYS_BY_KIND[kind]) in message  # what this validator does read
    assert load_spec(text, "x.yaml")  # without a kind (a bare spec) the key is still a spec key


def test_own_keys_pass_and_a_typo_gets_a_suggestion():
    assert load_spec("simulation: {stop_time: 2}\ninputs: {u: 1}\n", "s.yaml", "fmi").simulation.stop_time == 2
    assert load_spec("weather: Chicago\ntimestep_per_hour: 4\n", "s.yaml", "energyplus").weather == "Chicago"
    assert "did you mean 'simulation'" in _error("simulaton: {stop_time: 2}\n")


@pytest.mark.parametrize(("text", "key"), [
    ("simulation: {stop_time: .nan}\n", "simulation.stop_time"),
    ("simulation: {stop_time: .inf}\n", "simulation.stop_time"),
    ("simulation: {step_size: .nan}\n", "simulation.step_size"),
    ("simulation: {tolerance: .inf}\n", "simulation.tolerance"),
    ("simulation: {start_time: -.inf, stop_time: 1}\n", "simulation.start_time"),
    ("inputs: {u: .nan}\n", "inputs.u"),
])
def test_non_finite_numbers_are_refused_naming_the_key(text, key):  # noqa: ANN001
    message = _error(text)
    assert f"{key}: " in message and "not a finite number" in message and "line 1" in message


@pytest.mark.parametrize(("text", "key"), [
    ("simulation: {step_size: 0}\n", "simulation.step_size"),
    ("simulation: {step_size: -0.1}\n", "simulation.step_size"),
    ("simulation: {tolerance: 0}\n", "simulation.tolerance"),
    ("simulation: {stop_time: 0}\n", "stop_time"),
    ("simulation: {stop_time: -5}\n", "stop_time"),
])
def test_non_positive_simulation_settings_are_refused_naming_the_key(text, key):  # noqa: ANN001
    assert key in _error(text)


@pytest.mark.parametrize("text", ["meshing: {strategy_timeout_seconds: .inf}\n",
                                  "meshing: {strategy_timeout_seconds: 0}\n",
                                  "meshing: {strategy_timeout_seconds: -1}\n",
                                  "meshing:\n  strategies: [{name: a, timeout_seconds: .nan}]\n"])
def test_timeouts_must_be_finite_and_positive(text):  # noqa: ANN001
    message = _error(text, "mesh", "part.step.validation.yaml")
    assert "timeout_seconds" in message and message.startswith("part.step.validation.yaml: ")


def test_a_hostile_spec_with_many_bad_numbers_gets_a_bounded_message():
    text = "inputs:\n" + "".join(f"  u{i}: .nan\n" for i in range(5000))
    assert len(_error(text)) < 6000


def _run(*exprs: str) -> list:
    return evaluate_assertions([Assertion(name=f"a{i}", expr=e) for i, e in enumerate(exprs)],
                               inputs={}, outputs={"y": 2.0, "flag": True, "n": 3}, probe={})


@pytest.mark.parametrize("expr", ["o.y + true > 2.5", "true + o.y > 2.5", "o.flag > 0", "o.flag == 1",
                                  "true < 2.0", "o.flag * 2.0 == 2.0", "o.flag - 1 == 0", "o.y / true == 2.0",
                                  "true % 2 == 1", "double(o.flag) > 0.5", "int(true) == 1"])
def test_booleans_are_never_numbers_in_cel(expr):  # noqa: ANN001
    (result,) = _run(expr)
    assert result.passed is False and result.error, expr


def test_real_numbers_still_coerce_and_bools_still_compare():
    results = _run("o.y + 1 > 2.5", "o.n == 3", "1 < o.y", "o.n * 2 == 6", "int(o.y) == 2", "double(2) == o.y",
                   "o.flag == true", "false < true", "o.flag && o.y > 1")
    assert [(r.passed, r.error) for r in results] == [(True, None)] * len(results)


def test_validate_refuses_a_foreign_key_in_the_spec(sample_fmus, tmp_path):  # noqa: ANN001
    spec = tmp_path / "lag.fmu.validation.yaml"
    spec.write_text("weather: Chicago\nassertions:\n  - {name: ok, expr: 'o.y > 0'}\n")
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate",
                           str(sample_fmus["first_order_lag"]), "--spec", str(spec), "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    (msg,) = [m for m in out["messages"] if m["code"] == "SPEC_INVALID"]
    assert "lag.fmu.validation.yaml" in msg["text"] and "'weather'" in msg["text"] and "simulation" in msg["text"]


def test_validate_turns_bool_arithmetic_into_a_failed_assertion(sample_fmus, tmp_path: Path):  # noqa: ANN001
    spec = tmp_path / "spec.yaml"
    spec.write_text("inputs: {u: 1.0}\nassertions:\n  - {name: sneaky, expr: 'o.y + true > 1.5'}\n")
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate",
                           str(sample_fmus["first_order_lag"]), "--spec", str(spec), "--json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    (result,) = json.loads(proc.stdout)["outputs"]["assertions"]
    assert result["passed"] is False and "bool" in result["error"]
