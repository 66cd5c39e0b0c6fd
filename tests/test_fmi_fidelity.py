"""Every FMU the field ships, through ``validibot validate`` as a user runs it, against a direct fmpy run.

The FMUs are built from the C sources in ``tests/fmi_cases/`` (Model Exchange only, both interfaces, FMI 3
types and arrays, source-only, Scheduled-Execution only); the expected values come from fmpy itself in this
test process, so "the pipeline agrees with fmpy" is what is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fmi_cases_build import build_case

CLI = [sys.executable, "-m", "validibot_pipelines.cli"]
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def fmus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("cases")
    return {name: build_case(name, out) for name in (
        "me_only_fmi2", "cs_and_me_fmi2", "me_only_fmi3", "cs_fmi3_types", "cs_fmi3_arrays",
        "cs_fmi2_int_bool_string", "source_only_fmi2", "source_only_fmi3", "se_only_fmi3")}


def validate(fmu: Path, tmp_path: Path, spec: str | None = None) -> tuple[int, dict]:
    args = [*CLI, "validate", str(fmu), "--json"]
    tmp_path.mkdir(parents=True, exist_ok=True)
    if spec is not None:
        spec_path = tmp_path / f"{fmu.name}.validation.yaml"
        spec_path.write_text(spec)
        args += ["--spec", str(spec_path)]
    env = {**os.environ, "VALIDIBOT_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join([PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.stdout, proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def direct(fmu: Path, **kwargs):  # noqa: ANN003, ANN201 - fmpy's own run, the reference
    from fmpy import simulate_fmu

    return simulate_fmu(str(fmu), **kwargs)


def test_model_exchange_only_simulates_with_cvode_by_default_and_euler_on_request(fmus, tmp_path) -> None:  # noqa: ANN001
    for name in ("me_only_fmi2", "me_only_fmi3"):
        rc, out = validate(fmus[name], tmp_path / name)
        assert rc == 0 and out["status"] == "success", out["messages"]
        assert out["outputs"]["interface"] == "model_exchange" and out["outputs"]["solver"] == "cvode"
        expected = direct(fmus[name], fmi_type="ModelExchange", solver="CVode")
        assert out["outputs"]["output_values"]["y"] == pytest.approx(float(expected["y"][-1]), rel=1e-6)
        assert out["outputs"]["probe"]["interfaces"] == ["model_exchange"]
    rc, out = validate(fmus["me_only_fmi2"], tmp_path / "euler", "simulation: {solver: euler, step_size: 0.001}\n")
    assert rc == 0, out["messages"]
    euler = direct(fmus["me_only_fmi2"], fmi_type="ModelExchange", solver="Euler", step_size=0.001,
                   output_interval=0.001)
    assert out["outputs"]["solver"] == "euler"
    assert out["outputs"]["output_values"]["y"] == float(euler["y"][-1])


def test_an_fmu_with_both_interfaces_runs_cosimulation_unless_the_spec_asks(fmus, tmp_path) -> None:  # noqa: ANN001
    fmu = fmus["cs_and_me_fmi2"]
    rc, out = validate(fmu, tmp_path / "cs")
    assert rc == 0 and out["outputs"]["interface"] == "co_simulation" and out["outputs"]["solver"] is None
    assert out["outputs"]["output_values"]["y"] == float(direct(fmu, fmi_type="CoSimulation")["y"][-1])
    assert out["outputs"]["probe"]["interfaces"] == ["co_simulation", "model_exchange"]
    rc, out = validate(fmu, tmp_path / "me", "simulation: {interface: model_exchange}\n")
    assert rc == 0 and out["outputs"]["interface"] == "model_exchange", out["messages"]
    assert out["outputs"]["output_values"]["y"] == pytest.approx(
        float(direct(fmu, fmi_type="ModelExchange")["y"][-1]), rel=1e-6)


def test_asking_for_an_interface_the_fmu_lacks_is_the_specs_fault(fmus, tmp_path) -> None:  # noqa: ANN001
    rc, out = validate(fmus["me_only_fmi2"], tmp_path, "simulation: {interface: co_simulation}\n")
    assert rc == 1 and out["status"] == "failed_validation"
    text = " ".join(m["text"] for m in out["messages"] if m["code"] == "FMU_INTERFACE_NOT_OFFERED")
    assert "me_only_fmi2.fmu" in text and "model_exchange" in text


def test_every_fmi3_type_is_reported_and_64_bit_integers_stay_exact(fmus, tmp_path) -> None:  # noqa: ANN001
    fmu = fmus["cs_fmi3_types"]
    spec = ("assertions:\n"
            "  - {name: exact_u64, expr: 'o.u64b == 9007199254740993'}\n"
            "  - {name: not_rounded, expr: 'o.u64b != 9007199254740992'}\n"
            "  - {name: max_u64, expr: 'o.u64 == 18446744073709551615u'}\n"
            "  - {name: text, expr: 'o.text == \"world\"'}\n")
    rc, out = validate(fmu, tmp_path, spec)
    assert rc == 0 and out["status"] == "success", out["messages"]
    values = out["outputs"]["output_values"]
    expected = direct(fmu)
    for name in expected.dtype.names[1:]:
        want = expected[name][-1].tolist()
        assert values[name] == want, name
    assert values["i64"] == 9007199254740993 and values["u64"] == 18446744073709551615
    assert values["i64n"] == -9223372036854775807
    assert values["text"] == "world" and values["blob"] == "00ff"
    assert set(out["outputs"]["not_recorded"]) >= {"text", "blob", "tick"}
    infos = [m for m in out["messages"] if m["code"] == "FMU_OUTPUT_NOT_RECORDED"]
    assert {m["location"] for m in infos} >= {"text", "blob", "tick"} and all(m["severity"] == "INFO" for m in infos)
    assert all(a["passed"] for a in out["outputs"]["assertions"]), out["outputs"]["assertions"]
    probe = out["outputs"]["probe"]
    assert probe["counts"]["structural_parameters"] == 1
    assert {v["name"]: v["dimensions"] for v in probe["variables"]}["seq"] == [2]


def test_a_rounded_64_bit_comparison_fails(fmus, tmp_path) -> None:  # noqa: ANN001
    rc, out = validate(fmus["cs_fmi3_types"], tmp_path,
                       "assertions:\n  - {name: rounded, expr: 'o.u64b == 9007199254740992'}\n")
    assert rc == 1 and not out["outputs"]["assertions"][0]["passed"]


def test_fmi3_arrays_are_recorded_as_lists_bound_in_cel_and_dimensioned_in_the_catalog(fmus, tmp_path) -> None:  # noqa: ANN001
    import pyarrow.parquet as pq

    fmu = fmus["cs_fmi3_arrays"]
    spec = ("assertions:\n"
            "  - {name: third, expr: 'o.y[2] > 2.5'}\n"
            "  - {name: three, expr: 'size(o.y) == 3'}\n"
            "  - {name: matrix, expr: 'o.m[1][0] == 4.0'}\n")
    rc, out = validate(fmu, tmp_path, spec)
    assert rc == 0 and out["status"] == "success", out["messages"]
    values = out["outputs"]["output_values"]
    expected = direct(fmu)
    assert values["y"] == expected["y"][-1].tolist() == [1.0, 2.0, 3.0]
    assert values["m"] == expected["m"][-1].tolist() == [[2.0, 3.0], [4.0, 5.0]]
    assert values["v"] == expected["v"][-1].tolist()
    assert all(a["passed"] for a in out["outputs"]["assertions"]), out["outputs"]["assertions"]
    dims = {v["name"]: v["dimensions"] for v in out["outputs"]["probe"]["variables"]}
    assert dims["y"] == [3] and dims["m"] == [2, 2] and dims["v"] == [3]
    series = Path(out["outputs"]["timeseries_uri"].removeprefix("file://"))
    table = pq.read_table(series)
    assert table.schema.field("m").metadata == {b"shape": b"2x2"}
    assert table.column("m")[-1].as_py() == [2.0, 3.0, 4.0, 5.0]
    assert table.num_rows == len(expected)


def test_fmi2_integer_boolean_enumeration_and_string_outputs(fmus, tmp_path) -> None:  # noqa: ANN001
    fmu = fmus["cs_fmi2_int_bool_string"]
    rc, out = validate(fmu, tmp_path)
    assert rc == 0 and out["status"] == "success", out["messages"]
    values = out["outputs"]["output_values"]
    expected = direct(fmu)
    for name in expected.dtype.names[1:]:
        assert values[name] == expected[name][-1].tolist(), name
    assert values["status"] == "ok" and out["outputs"]["not_recorded"] == ["status"]


@pytest.mark.parametrize("name", ["source_only_fmi2", "source_only_fmi3"])
def test_a_source_fmu_is_compiled_in_the_sandbox_with_its_build_log(name, fmus, tmp_path) -> None:  # noqa: ANN001
    from fmpy.build import build_platform_binary

    rc, out = validate(fmus[name], tmp_path)
    assert rc == 0 and out["status"] == "success", out["messages"]
    assert out["outputs"]["build_log"] and "Built target" in out["outputs"]["build_log"]
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(fmus[name]) as archive:
        archive.extractall(unzipped)
    (tmp_path / "build").mkdir()
    build_platform_binary(unzipped, build_dir=tmp_path / "build")
    assert out["outputs"]["output_values"]["y"] == float(direct(unzipped)["y"][-1]) == 3.0


def test_a_source_fmu_that_does_not_compile_names_the_error(fmus, tmp_path) -> None:  # noqa: ANN001
    broken = tmp_path / "source_broken.fmu"
    with zipfile.ZipFile(fmus["source_only_fmi2"]) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "sources/model.c":
                data += b"\nthis is not C;\n"
            dst.writestr(item, data)
    rc, out = validate(broken, tmp_path)
    assert rc == 1 and out["status"] == "failed_validation"
    [message] = [m for m in out["messages"] if m["code"] == "FMU_SOURCE_BUILD_FAILED"]
    assert "source_broken.fmu" in message["text"] and "model.c" in message["text"]


def test_a_source_fmu_without_a_toolchain_says_what_the_worker_lacks(fmus, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A worker image without CMake or a C compiler: the child says so instead of fmpy's FileNotFoundError."""
    from validibot_pipelines.validators.fmi.worker import child

    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no cmake, no cc
    with pytest.raises(child.SourceBuildFailed, match="cmake") as caught:
        child._platform_binary(str(fmus["source_only_fmi2"]), tmp_path)
    assert "containers/apt-fmi.txt" in str(caught.value)


def test_scheduled_execution_only_is_refused_saying_why(fmus, tmp_path) -> None:  # noqa: ANN001
    rc, out = validate(fmus["se_only_fmi3"], tmp_path)
    assert rc == 1 and out["status"] == "failed_validation"
    text = " ".join(m["text"] for m in out["messages"] if m["code"] == "FMU_INTERFACE_UNSUPPORTED")
    assert "Scheduled Execution" in text and "se_only_fmi3.fmu" in text


def _reference_csv(path: Path, result, scale: float = 1.0, names: list[str] | None = None) -> Path:  # noqa: ANN001
    names = names or [n for n in result.dtype.names[1:] if result[n].ndim == 1]
    lines = [",".join(f'"{n}"' for n in ["time", *names])]
    lines += [",".join(repr(float(v)) for v in [row["time"], *(row[n] * scale for n in names)]) for row in result]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_reference_result_within_tolerance_passes_and_a_drifted_one_names_its_signals(fmus, tmp_path) -> None:  # noqa: ANN001
    fmu = fmus["cs_and_me_fmi2"]
    reference = direct(fmu)
    good = _reference_csv(tmp_path / "lag_ref.csv", reference)
    staged = tmp_path / "run"
    staged.mkdir()
    shutil.copy(fmu, staged / fmu.name)
    shutil.copy(good, staged / good.name)
    rc, out = validate(staged / fmu.name, staged, "reference: lag_ref.csv\n")
    assert rc == 0 and out["status"] == "success", out["messages"]
    comparison = out["outputs"]["reference"]
    assert comparison["passed"] and [s["name"] for s in comparison["signals"]] == ["y"]
    assert comparison["signals"][0]["outliers"] == 0

    _reference_csv(staged / "lag_ref.csv", reference, scale=1.5)  # the model "changed": 50 % off
    rc, out = validate(staged / fmu.name, staged / "again", "reference: {file: lag_ref.csv, tolerance: 0.05}\n")
    assert rc == 1 and out["status"] == "failed_validation"
    [mismatch] = [m for m in out["messages"] if m["code"] == "REFERENCE_MISMATCH"]
    assert fmu.name in mismatch["text"] and "y (" in mismatch["text"] and "lag_ref.csv" in mismatch["text"]


def test_a_missing_reference_file_is_refused_at_intake(fmus, tmp_path) -> None:  # noqa: ANN001
    rc, out = validate(fmus["cs_and_me_fmi2"], tmp_path, "reference: nowhere.csv\n")
    assert rc == 1
    assert any(m["code"] == "REFERENCE_NOT_FOUND" and "nowhere.csv" in m["text"] for m in out["messages"])
