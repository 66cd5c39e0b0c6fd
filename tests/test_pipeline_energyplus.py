"""EnergyPlus through Dagster for real: sensor → energyplus_model → energyplus_simulation (real annual runs of
the EnergyPlus binary) → CEL checks; plus the failure cases and the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.outcomes import assert_each_fails_naming_the_file, errors
from validibot_pipelines.storage import get_store
from validibot_pipelines.validators.energyplus.samples import sample_idf
from validibot_pipelines.validators.energyplus.worker.install import find_shipped_weather

SPEC = """\
weather: USA_IL_Chicago-OHare.Intl.AP.725300_TMY3.epw
timestep_per_hour: 4
outputs: [Zone Mean Air Temperature]
assertions:
  - {name: eui_plausible, expr: "o.site_eui_kwh_m2 > 20.0 && o.site_eui_kwh_m2 < 600.0"}
  - {name: heats_in_chicago, expr: "o.heating_kwh > 0.0"}
  - {name: cools_in_chicago, expr: "o.cooling_kwh > 0.0"}
  - {name: no_fatal, expr: "o.fatal_count == 0"}
  - {name: version_matches, expr: "o.version_match", severity: WARNING}
"""


def test_idf_and_epjson_annual_runs(pipeline, tmp_path):  # noqa: ANN001
    idf = pipeline.drop(sample_idf("one_zone_box"), spec=SPEC)
    epjson = pipeline.drop(sample_idf("one_zone_box", ".epJSON"), spec=SPEC)
    before = hashlib.sha256(sample_idf("one_zone_box").read_bytes()).hexdigest()

    outcomes = {o.source_uri: o for o in pipeline.tick()}

    assert set(pipeline.instance.get_dynamic_partitions("energyplus_models")) == {o.partition_key
                                                                                  for o in outcomes.values()}
    results = {}
    for uri in (idf, epjson):
        o = outcomes[uri]
        assert o.success, errors(o, "energyplus_simulation")
        assert o.checks["intake_accepted"][0] and o.checks["simulation_succeeded"][0]
        assert o.checks["cel_assertions"] == (True, "5/5 assertions passed")
        sim = o.outputs["energyplus_simulation"]
        out = sim["outputs"]
        assert out["return_code"] == 0 and out["fatal_count"] == 0 and out["energyplus_version"].startswith("25.2")
        assert out["version_match"] is True
        m = out["metrics"]
        assert m["simulated_conditioned_area_m2"] == pytest.approx(100.0, rel=1e-3)
        assert m["site_electricity_kwh"] > 1000 and m["heating_kwh"] > 0 and m["cooling_kwh"] > 0
        assert m["peak_electric_demand_w"] > 0
        for key in ("sql_uri", "err_uri", "timeseries_uri"):
            assert get_store(out[key]).exists(out[key]), key
        results[uri] = m
    # The same building, as IDF or epJSON, gives the same energy use.
    assert results[idf]["site_eui_kwh_m2"] == pytest.approx(results[epjson]["site_eui_kwh_m2"], rel=1e-6)
    # The user's file in the landing zone is untouched (only a private copy was normalised).
    assert hashlib.sha256(get_store(idf).read_bytes(idf)).hexdigest() == before


def test_metrics_table_and_hourly_timeseries_in_metadata(pipeline):  # noqa: ANN001
    from dagster import AssetKey, AssetRecordsFilter

    from validibot_pipelines.assets.checks import read_parquet

    pipeline.drop(sample_idf("one_zone_box"), spec=SPEC)
    (o,) = pipeline.tick()
    mat = pipeline.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("energyplus_simulation"), asset_partitions=[o.partition_key]),
        limit=1).records[0].asset_materialization
    metrics = {r.data["metric"]: r.data for r in mat.metadata["metrics"].records}
    assert metrics["site_eui_kwh_m2"]["unit"] == "kWh/m2" and metrics["site_eui_kwh_m2"]["value"] > 0
    assert mat.metadata["sql_uri"].value.endswith("eplusout.sql")
    frame = read_parquet(mat.metadata["timeseries_uri"].value)
    assert set(frame["variable"]) == {"Zone Mean Air Temperature"}
    assert len(frame) == 8760


def test_uploaded_weather_file(pipeline, tmp_path):  # noqa: ANN001
    epw = tmp_path / "site_weather.epw"
    shutil.copyfile(find_shipped_weather("Tampa"), epw)
    pipeline.drop(epw)
    pipeline.drop(sample_idf("one_zone_box"), spec="weather: site_weather.epw\n")
    (o,) = pipeline.tick()  # the .epw itself is not a model: only one run
    assert o.success, errors(o, "energyplus_simulation")
    assert o.outputs["energyplus_simulation"]["outputs"]["weather_file"] == "site_weather.epw"


def test_bad_energyplus_inputs(tmp_path, pipeline):  # noqa: ANN001
    unsafe = tmp_path / "plugin.idf"
    unsafe.write_text(sample_idf("one_zone_box").read_text()
                      + "\nPythonPlugin:Instance, Evil, No, evil_module, EvilClass;\n")
    huge = tmp_path / "huge.idf"
    huge.write_text(sample_idf("one_zone_box").read_text() + "\n" + ("! padding\n" * 2_300_000))
    cases = {
        pipeline.drop(sample_idf("syntax_error"), spec="weather: Chicago\n"): ("energyplus_model", "EP_SYNTAX"),
        pipeline.drop(sample_idf("fatal_error"), spec="weather: Chicago\n"):
            ("energyplus_simulation", "EP_SIMULATION_FAILED"),
        pipeline.drop(unsafe, spec="weather: Chicago\n"): ("energyplus_model", "EP_UNSAFE_OBJECT"),
        pipeline.drop(sample_idf("one_zone_box"), name="noweather.idf"): ("energyplus_model", "WEATHER_MISSING"),
        pipeline.drop(_variant(tmp_path), spec="weather: Atlantis_Harbour.epw\n"): ("energyplus_model",
                                                                                   "WEATHER_NOT_FOUND"),
        pipeline.drop(huge, spec="weather: Chicago\n"): ("energyplus_model", "EP_TOO_LARGE"),
    }
    outcomes = {o.source_uri: o for o in pipeline.tick()}
    assert_each_fails_naming_the_file(outcomes, cases)
    fatal = next(o for u, o in outcomes.items() if cases[u][1] == "EP_SIMULATION_FAILED")
    assert fatal.outputs["energyplus_simulation"]["outputs"]["fatal_count"] >= 1
    assert fatal.checks["simulation_succeeded"][0] is False


def _variant(tmp_path: Path) -> Path:
    path = tmp_path / "atlantis.idf"
    path.write_text(sample_idf("one_zone_box").read_text() + "\n! a byte-distinct copy\n")
    return path


def test_cli_validates_an_idf(tmp_path):  # noqa: ANN001
    spec = tmp_path / "spec.yaml"
    spec.write_text("weather: Golden\nassertions:\n  - {name: eui, expr: 'o.site_eui_kwh_m2 < 1.0'}\n")
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate", str(sample_idf("one_zone_box")),
                           "--spec", str(spec), "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the assertion is deliberately impossible
    out = json.loads(proc.stdout)
    assert out["status"] == "failed_validation"
    assert out["outputs"]["weather_file"].startswith("USA_CO_Golden")
    assert [a["passed"] for a in out["outputs"]["assertions"]] == [False]
    assert any(m["code"] == "ASSERTION_FAILED" for m in out["messages"])


def test_cli_keeps_the_model_s_own_timestep_and_says_so(tmp_path):  # noqa: ANN001
    model = tmp_path / "six.idf"
    model.write_text(sample_idf("one_zone_box").read_text().replace("Timestep,4;", "Timestep,6;"))
    spec = tmp_path / "spec.yaml"
    spec.write_text("weather: Golden\n")  # no timestep_per_hour: the model's own 6 must be used
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate", str(model),
                           "--spec", str(spec), "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = json.loads(proc.stdout.splitlines()[0])
    assert out["status"] == "success", out["messages"]
    notes = [m for m in out["messages"] if m["code"] == "EP_TIMESTEP"]
    assert [m["severity"] for m in notes] == ["INFO"] and "model's own Timestep 6" in notes[0]["text"]


def test_cli_timeout_stops_a_long_energyplus_run(tmp_path):  # noqa: ANN001
    model = tmp_path / "century.idf"  # a hundred years at 60 timesteps an hour: far past a 3 s timeout
    text = sample_idf("one_zone_box").read_text().replace("Timestep,4;", "Timestep,60;")
    begin, end = "  ,                        !- Begin Year", "  ,                        !- End Year"
    model.write_text(text.replace(begin, "  2001," + begin[3:]).replace(end, "  2100," + end[3:]))
    spec = tmp_path / "spec.yaml"
    spec.write_text("weather: Golden\n")
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate", str(model), "--spec",
                           str(spec), "--json", "--timeout", "3"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    out = json.loads(proc.stdout.splitlines()[0])
    assert out["status"] == "failed_validation", out["messages"]
    timeouts = [m for m in out["messages"] if m["code"] == "EP_TIMEOUT"]
    assert timeouts and "within 3 s" in timeouts[0]["text"] and "raise the timeout" in timeouts[0]["text"]
