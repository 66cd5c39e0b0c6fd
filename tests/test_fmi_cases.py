"""Check the FMI coverage test FMUs (``tests/fmi_cases``) directly with fmpy, independent of the pipeline.

Each case is built by :mod:`fmi_cases_build` and then validated, inspected and simulated with fmpy's own
API, asserting the closed-form values the model is designed to produce. These tests pin down both the FMUs
and what fmpy (0.3.x) does with each feature, which the pipeline tests build on:

* ``simulate_fmu`` records only Real/Integer/Boolean (FMI 2.0: float64/int32/bool; Enumeration -> int32)
  and the FMI 3.0 numeric types + Boolean (each with its exact numpy dtype; Enumeration -> int64). String,
  Binary and Clock variables are silently dropped, even when named in ``output=``. Columns are grouped by
  type (Float32, Float64, Int8, UInt8, ...), not in modelDescription order.
* Int64/UInt64 values keep full precision (int64/uint64 columns), e.g. 2**53 + 1 and 2**64 - 1.
* Arrays become sub-array columns shaped by the ``<Dimension>`` starts (a structural parameter's *start*);
  setting that structural parameter to another value makes fmpy request the wrong number of values.
* A Clock output in Co-Simulation is accepted (with or without event mode) and ignored by the recorder.
* A source-only FMU is reported as platform ``c-code`` and cannot be simulated until compiled; fmpy 0.3.x
  compiles both FMI 2.0 (``<SourceFiles>``) and FMI 3.0 (``buildDescription.xml``) sources with
  :func:`fmpy.build.build_platform_binary` (CMake). There is no ``fmpy.util.compile_platform_binary`` in
  this version.
* A Scheduled-Execution-only FMU is read fine but ``simulate_fmu`` refuses it; it can be driven by hand.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import fmpy
import numpy as np
import pytest
from fmpy.fmi3 import FMU3ScheduledExecution, FMU3Slave
from fmpy.model_description import read_model_description
from fmpy.simulation import instantiate_fmu
from fmpy.validation import validate_fmu

from tests.fmi_cases_build import CASES, build_case

# simulate_fmu's default communication grid for the CS cases: DefaultExperiment 0..1, stepSize 0.1
GRID = np.array([0.1 * i for i in range(11)])  # the same float rounding as fmpy's start + n*interval
INTERFACE_ATTRIBUTES = {
    "ModelExchange": "modelExchange",
    "CoSimulation": "coSimulation",
    "ScheduledExecution": "scheduledExecution",
}


@pytest.fixture(scope="module")
def fmus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out_dir = tmp_path_factory.mktemp("fmi_cases")
    return {name: build_case(name, out_dir) for name in CASES}


def _extract(fmu: Path, target: Path) -> Path:
    with zipfile.ZipFile(fmu) as archive:
        archive.extractall(target)
    return target


# ------------------------------------------------------------------------------------------ every case


@pytest.mark.parametrize("name", list(CASES))
def test_case_validates_and_declares_its_interfaces(fmus: dict[str, Path], name: str) -> None:
    case = CASES[name]
    assert validate_fmu(str(fmus[name])) == []
    md = read_model_description(str(fmus[name]))
    assert md.fmiVersion == case.fmi_version
    for element, attribute in INTERFACE_ATTRIBUTES.items():
        interface = getattr(md, attribute, None)
        assert (interface is not None) == (element in case.interfaces), element
        if interface is not None:
            assert interface.modelIdentifier == name
    names = zipfile.ZipFile(fmus[name]).namelist()
    binaries = [n for n in names if n.startswith("binaries/")]
    if case.source_only:
        assert binaries == [] and "sources/model.c" in names
        assert fmpy.supported_platforms(str(fmus[name])) == ["c-code"]
    else:
        platform = "linux64" if case.fmi_version == "2.0" else "x86_64-linux"
        assert binaries == [f"binaries/{platform}/{name}.so"]
        assert not any(n.startswith("sources/") for n in names)


def test_build_is_reproducible(tmp_path: Path, fmus: dict[str, Path]) -> None:
    again = build_case("cs_fmi3_types", tmp_path)
    assert again.read_bytes() == fmus["cs_fmi3_types"].read_bytes()


def test_unknown_case_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown FMI test case"):
        build_case("no_such_case", tmp_path)


# ------------------------------------------------------------------------------------- Model Exchange


@pytest.mark.parametrize("name", ["me_only_fmi2", "me_only_fmi3", "cs_and_me_fmi2"])
def test_model_exchange_cvode_follows_exp(fmus: dict[str, Path], name: str) -> None:
    result = fmpy.simulate_fmu(str(fmus[name]), fmi_type="ModelExchange", solver="CVode")
    assert result.dtype.names == ("time", "y")
    assert len(result) == 1001  # output interval 1e-3 over 0..1
    assert result["time"][-1] == pytest.approx(1.0)
    # CVode with the DefaultExperiment tolerance 1e-8: y(1) = 0.3678794150955906 with fmpy 0.3.32
    assert abs(result["y"][-1] - np.exp(-1.0)) < 1e-6
    np.testing.assert_allclose(result["y"], np.exp(-result["time"]), atol=1e-6)


@pytest.mark.parametrize("name", ["me_only_fmi2", "me_only_fmi3"])
def test_model_exchange_euler_matches_its_closed_form(fmus: dict[str, Path], name: str) -> None:
    result = fmpy.simulate_fmu(str(fmus[name]), fmi_type="ModelExchange", solver="Euler")
    # forward Euler with fmpy's default step 1e-3: y(t_n) = (1 - 1e-3)**n; y(1) = 0.36769542477096384
    n = np.arange(len(result))
    np.testing.assert_allclose(result["y"], (1.0 - 1e-3) ** n, rtol=1e-9)
    assert abs(result["y"][-1] - np.exp(-1.0)) < 2e-4


@pytest.mark.parametrize("name", ["me_only_fmi2", "me_only_fmi3"])
def test_model_exchange_only_picks_me_and_refuses_cs(fmus: dict[str, Path], name: str) -> None:
    result = fmpy.simulate_fmu(str(fmus[name]))  # no CoSimulation element: fmpy chooses Model Exchange
    assert len(result) == 1001
    with pytest.raises(Exception, match="CoSimulation"):
        fmpy.simulate_fmu(str(fmus[name]), fmi_type="CoSimulation")


def test_cs_and_me_co_simulation_is_exact(fmus: dict[str, Path]) -> None:
    default = fmpy.simulate_fmu(str(fmus["cs_and_me_fmi2"]))  # both interfaces: fmpy prefers CoSimulation
    result = fmpy.simulate_fmu(str(fmus["cs_and_me_fmi2"]), fmi_type="CoSimulation")
    np.testing.assert_array_equal(default, result)
    np.testing.assert_allclose(result["time"], GRID, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["y"], np.exp(-result["time"]), rtol=1e-12)


# --------------------------------------------------------------------------------------- FMI 3.0 types


def test_fmi3_types_recorded_columns_and_dtypes(fmus: dict[str, Path]) -> None:
    result = fmpy.simulate_fmu(str(fmus["cs_fmi3_types"]))
    # String (text), Binary (blob) and Clock (tick) are dropped; Enumeration is recorded as Int64.
    assert result.dtype.descr == [
        ("time", "<f8"), ("f32", "<f4"), ("f64", "<f8"), ("i8", "|i1"), ("u8", "|u1"), ("seq", "|u1", (2,)),
        ("i16", "<i2"), ("u16", "<u2"), ("i32", "<i4"), ("u32", "<u4"), ("i64", "<i8"), ("i64n", "<i8"),
        ("level", "<i8"), ("u64", "<u8"), ("u64b", "<u8"), ("flag", "|b1"),
    ]  # fmt: skip
    t = result["time"]
    np.testing.assert_allclose(t, GRID, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result["f32"], (np.float32(0.5) + t.astype(np.float32)))
    np.testing.assert_array_equal(result["f64"], 2.0 * t)
    late = t >= 0.5 - 1e-9
    constants = {"i8": -128, "u8": 255, "i16": -32768, "u16": 65535, "u32": 4294967295}
    for column, value in constants.items():
        assert (result[column] == value).all(), column
    assert result["i32"].tolist() == list(range(11))  # one per completed doStep
    assert result["i64"].tolist() == [2**53 + 1] * 11  # exact: not rounded through float64
    assert result["i64n"].tolist() == [-9223372036854775807] * 11
    assert result["u64"].tolist() == [2**64 - 1] * 11
    assert result["u64b"].tolist() == [2**53 + 1] * 11
    assert result["flag"].tolist() == late.tolist()
    assert result["level"].tolist() == [3 if x else 1 for x in late]
    assert result["seq"].tolist() == [[10, 20]] * 11


def test_fmi3_string_binary_clock_are_dropped_even_when_requested(fmus: dict[str, Path]) -> None:
    result = fmpy.simulate_fmu(str(fmus["cs_fmi3_types"]), output=["text", "blob", "tick"])
    assert result.dtype.names == ("time",)
    assert len(result) == 11


def test_fmi3_types_with_event_mode(fmus: dict[str, Path]) -> None:
    # hasEventMode="true" (required for the Clock): fmpy's event-mode loop runs and gives the same samples
    plain = fmpy.simulate_fmu(str(fmus["cs_fmi3_types"]))
    evented = fmpy.simulate_fmu(str(fmus["cs_fmi3_types"]), use_event_mode=True)
    np.testing.assert_array_equal(plain, evented)


def test_fmi3_string_binary_clock_through_the_raw_api(fmus: dict[str, Path], tmp_path: Path) -> None:
    unzipdir = _extract(fmus["cs_fmi3_types"], tmp_path / "types")
    md = read_model_description(str(unzipdir))
    vr = {v.name: v.valueReference for v in md.modelVariables}
    fmu = instantiate_fmu(str(unzipdir), md, fmi_type="CoSimulation")
    assert isinstance(fmu, FMU3Slave)
    try:
        fmu.enterInitializationMode(startTime=0.0)
        fmu.exitInitializationMode()
        assert fmu.getString([vr["text"]]) == ["hello"]
        assert fmu.getBinary([vr["blob"]]) == [bytes.fromhex("DEADBEEF")]
        assert fmu.getClock([vr["tick"]]) == [False]
        assert fmu.getUInt64([vr["n"]]) == [2]
        for step in range(5):
            fmu.doStep(currentCommunicationPoint=0.1 * step, communicationStepSize=0.1)
        assert fmu.getString([vr["text"]]) == ["world"]
        assert fmu.getBinary([vr["blob"]]) == [bytes.fromhex("00FF")]
        assert fmu.getInt64([vr["i64"], vr["level"]]) == [2**53 + 1, 3]
        assert fmu.getUInt8([vr["seq"]], nValues=2) == [10, 20]
        fmu.terminate()
    finally:
        fmu.freeInstance()


# -------------------------------------------------------------------------------------- FMI 3.0 arrays


def test_fmi3_arrays_shapes_and_values(fmus: dict[str, Path]) -> None:
    md = read_model_description(str(fmus["cs_fmi3_arrays"]))
    shapes = {v.name: v.shape for v in md.modelVariables}
    assert shapes == {"time": (), "n": (), "y": (3,), "m": (2, 2), "v": (3,), "iv": (2,)}
    assert [v.name for v in md.modelVariables if v.causality == "structuralParameter"] == ["n"]

    result = fmpy.simulate_fmu(str(fmus["cs_fmi3_arrays"]))
    assert result.dtype.descr == [
        ("time", "<f8"), ("y", "<f8", (3,)), ("m", "<f8", (2, 2)), ("v", "<f8", (3,)), ("iv", "<i4", (2,)),
    ]  # fmt: skip
    t = result["time"]
    np.testing.assert_allclose(t, GRID, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result["y"], np.stack([t, 2 * t, 3 * t], axis=1))
    np.testing.assert_array_equal(result["m"], np.array([[1.0, 2.0], [3.0, 4.0]]) + t[:, None, None])
    np.testing.assert_array_equal(result["v"], np.array([10.0, 20.0, 30.0]) + t[:, None])
    steps = np.arange(11)
    np.testing.assert_array_equal(result["iv"], np.stack([steps, -steps], axis=1))


def test_fmi3_arrays_changed_structural_parameter_breaks_fmpy(fmus: dict[str, Path]) -> None:
    # fmpy shapes the recorder from the XML start (n = 3) and so asks for too few values once n = 5
    with pytest.raises(fmpy.fmi1.FMICallException, match="fmi3GetFloat64"):
        fmpy.simulate_fmu(str(fmus["cs_fmi3_arrays"]), start_values={"n": 5}, logger=lambda *args: None)


# -------------------------------------------------------------------------- FMI 2.0 non-Real outputs


def test_fmi2_integer_boolean_string_enumeration(fmus: dict[str, Path], tmp_path: Path) -> None:
    result = fmpy.simulate_fmu(str(fmus["cs_fmi2_int_bool_string"]))
    # the String output "status" is dropped; Enumeration "level" is recorded as Integer (int32)
    assert result.dtype.descr == [("time", "<f8"), ("y", "<f8"), ("steps", "<i4"), ("level", "<i4"), ("late", "|b1")]
    t = result["time"]
    np.testing.assert_allclose(t, GRID, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result["y"], 2.0 * t)
    assert result["steps"].tolist() == list(range(11))
    late = (t >= 0.5 - 1e-9).tolist()
    assert result["late"].tolist() == late
    assert result["level"].tolist() == [3 if x else 1 for x in late]

    unzipdir = _extract(fmus["cs_fmi2_int_bool_string"], tmp_path / "fmi2_types")
    md = read_model_description(str(unzipdir))
    fmu = instantiate_fmu(str(unzipdir), md, fmi_type="CoSimulation")
    try:
        fmu.setupExperiment(startTime=0.0)
        fmu.enterInitializationMode()
        fmu.exitInitializationMode()
        assert fmu.getString([300]) == [b"ok"]  # fmpy's FMI 2.0 getString returns bytes
        assert fmu.getInteger([100, 101]) == [0, 1]
        fmu.terminate()
    finally:
        fmu.freeInstance()


# ----------------------------------------------------------------------------------------- source only


@pytest.mark.parametrize("name", ["source_only_fmi2", "source_only_fmi3"])
def test_source_only_compiles_with_fmpy_and_simulates(fmus: dict[str, Path], name: str, tmp_path: Path) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("fmpy.build.build_platform_binary needs cmake")
    from fmpy.build import build_platform_binary

    with pytest.raises(Exception, match="cannot be simulated on the current platform"):
        fmpy.simulate_fmu(str(fmus[name]))

    md = read_model_description(str(fmus[name]))
    assert md.buildConfigurations[0].modelIdentifier == name
    assert md.buildConfigurations[0].sourceFileSets[0].sourceFiles == ["model.c", f"fmi{name[-1]}_core.c"]

    unzipdir = _extract(fmus[name], tmp_path / "fmu")
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    build_platform_binary(unzipdir, build_dir=build_dir)
    platform = "linux64" if name.endswith("fmi2") else "x86_64-linux"
    assert (unzipdir / "binaries" / platform / f"{name}.so").is_file()

    result = fmpy.simulate_fmu(str(unzipdir))
    np.testing.assert_allclose(result["time"], GRID, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["y"], 1.0 + 2.0 * result["time"], rtol=1e-12)
    assert result["y"][-1] == pytest.approx(3.0)


# --------------------------------------------------------------------------------- Scheduled Execution


def test_scheduled_execution_only_is_read_but_not_simulated(fmus: dict[str, Path], tmp_path: Path) -> None:
    md = read_model_description(str(fmus["se_only_fmi3"]))
    assert md.scheduledExecution is not None and md.scheduledExecution.modelIdentifier == "se_only_fmi3"
    assert md.coSimulation is None and md.modelExchange is None
    clock = next(v for v in md.modelVariables if v.name == "tick")
    assert (clock.type, clock.causality) == ("Clock", "input")

    for fmi_type in (None, "ModelExchange", "CoSimulation"):
        with pytest.raises(Exception, match="is not supported by the FMU"):
            fmpy.simulate_fmu(str(fmus["se_only_fmi3"]), fmi_type=fmi_type)

    # fmpy can still drive it by hand: three activations of the 0.1 s clock
    unzipdir = _extract(fmus["se_only_fmi3"], tmp_path / "se")
    fmu = FMU3ScheduledExecution(
        guid=md.guid, unzipDirectory=str(unzipdir), modelIdentifier="se_only_fmi3", instanceName="se"
    )
    fmu.instantiate()
    try:
        fmu.enterInitializationMode(startTime=0.0)
        fmu.exitInitializationMode()
        for k in (1, 2, 3):
            fmu.activateModelPartition(clock.valueReference, 0.1 * k)
        assert fmu.getInt32([2]) == [3]
        assert fmu.getFloat64([3]) == [pytest.approx(0.3)]
        fmu.terminate()
    finally:
        fmu.freeInstance()
