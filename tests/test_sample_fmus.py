"""Sample FMUs: they build reproducibly, pass fmpy's validation, and behave exactly as documented.

The pipeline's own tests lean on these samples (known answers, known crash, known hang, SHA-256 dedup), so this
file pins those properties down at the source. crash and hang only ever run in child processes: a segfault or an
endless loop inside the pytest process would take the whole run down.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import fmpy
import numpy as np
import pytest
from fmpy.validation import validate_fmu

from validibot_pipelines.validators.fmi.samples.build import GOOD_SAMPLES, SAMPLE_FMUS, build_fmu, fmu_guid

# Runs one FMU with its default experiment in a fresh interpreter: argv[1] is the FMU path.
_CHILD_SIMULATION = "import sys, fmpy; fmpy.simulate_fmu(sys.argv[1]); print('finished')"


@pytest.fixture(scope="module")
def fmus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build every sample once per module; compiling is the slow part."""
    out_dir = tmp_path_factory.mktemp("fmus")
    return {name: build_fmu(name, out_dir) for name in SAMPLE_FMUS}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", SAMPLE_FMUS)
def test_sample_passes_fmpy_validation(fmus: dict[str, Path], name: str) -> None:
    assert validate_fmu(str(fmus[name])) == []


def test_good_samples_are_a_subset() -> None:
    assert set(GOOD_SAMPLES) <= set(SAMPLE_FMUS)


def test_first_order_lag_default_experiment_matches_closed_form(fmus: dict[str, Path]) -> None:
    result = fmpy.simulate_fmu(str(fmus["first_order_lag"]))
    t = result["time"]
    assert t[0] == 0.0 and t[-1] == pytest.approx(3.0) and len(t) == 301
    np.testing.assert_allclose(result["y"], 2.0 * 1.0 * (1.0 - np.exp(-t / 0.5)), rtol=0, atol=1e-9)


def test_first_order_lag_with_start_values_matches_closed_form(fmus: dict[str, Path]) -> None:
    result = fmpy.simulate_fmu(str(fmus["first_order_lag"]), start_values={"u": 3.0, "k": 1.0, "tau": 0.2})
    t = result["time"]
    np.testing.assert_allclose(result["y"], 1.0 * 3.0 * (1.0 - np.exp(-t / 0.2)), rtol=0, atol=1e-9)


def test_first_order_lag_rejects_non_positive_tau(fmus: dict[str, Path]) -> None:
    with pytest.raises(Exception, match="fmi2ExitInitializationMode"):
        fmpy.simulate_fmu(str(fmus["first_order_lag"]), start_values={"tau": 0.0})


def test_multi_output_matches_closed_form(fmus: dict[str, Path]) -> None:
    result = fmpy.simulate_fmu(str(fmus["multi_output"]))
    t = result["time"]
    assert len(t) == 201 and t[-1] == pytest.approx(2.0)
    np.testing.assert_allclose(result["ramp"], 1.5 * t, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["wave"], np.sin(2.0 * t), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(result["steps"], np.arange(len(t)))
    np.testing.assert_array_equal(result["positive"], np.sin(2.0 * t) > 0)
    assert result["positive"].any() and not result["positive"].all()  # crosses zero at t = pi/2


def test_same_name_and_variant_rebuild_byte_identical(tmp_path: Path) -> None:
    first = build_fmu("first_order_lag", tmp_path / "a", variant="bench-1")
    second = build_fmu("first_order_lag", tmp_path / "b", variant="bench-1")
    assert first.name == second.name == "first_order_lag-bench-1.fmu"
    assert first.read_bytes() == second.read_bytes()


def test_variants_differ(tmp_path: Path, fmus: dict[str, Path]) -> None:
    one = build_fmu("first_order_lag", tmp_path, variant="bench-1")
    two = build_fmu("first_order_lag", tmp_path, variant="bench-2")
    assert len({_sha256(one), _sha256(two), _sha256(fmus["first_order_lag"])}) == 3
    assert len({fmu_guid("first_order_lag"), fmu_guid("first_order_lag", "bench-1")}) == 2
    assert validate_fmu(str(two)) == []
    result = fmpy.simulate_fmu(str(two))  # the compiled-in GUID matches the variant's modelDescription
    assert result["y"][-1] == pytest.approx(2.0 * (1.0 - np.exp(-3.0 / 0.5)), abs=1e-9)


def test_invalid_names_and_variants_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown sample FMU"):
        build_fmu("common", tmp_path)
    with pytest.raises(ValueError, match="variant"):
        build_fmu("first_order_lag", tmp_path, variant="../escape")


def test_crash_fmu_kills_its_process_with_a_signal(fmus: dict[str, Path]) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD_SIMULATION, str(fmus["crash"])], capture_output=True, text=True, timeout=60
    )
    assert child.returncode < 0, (child.returncode, child.stdout, child.stderr)
    assert child.returncode == -signal.SIGSEGV
    assert "finished" not in child.stdout


def test_hang_fmu_never_returns(fmus: dict[str, Path]) -> None:
    with pytest.raises(subprocess.TimeoutExpired):  # subprocess.run kills the child on timeout
        subprocess.run(
            [sys.executable, "-c", _CHILD_SIMULATION, str(fmus["hang"])], capture_output=True, text=True, timeout=3
        )
