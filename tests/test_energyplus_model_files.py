"""EnergyPlus models that are folders: Schedule:File CSVs next to the model, ``.imf`` macro models with
``##include`` s, epJSON with HVACTemplate objects, the ``fail_on_severe`` switch — all real EnergyPlus runs in the
sandbox (January only, to keep them short), through ``validibot validate`` and through Dagster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.outcomes import errors
from validibot_pipelines.validators.energyplus.samples import sample_idf

LIGHTS_KW = 1.0  # one_zone_box: 10 W/m2 over 100 m2
JANUARY_HOURS = 31 * 24


def _january(text: str) -> str:
    short, n = re.subn(r"^  12,(\s*!- End Month)$", r"  1,\1", text, flags=re.MULTILINE)
    assert n == 1
    return short


def schedule_model(csv_name: str) -> str:
    """The one-zone box with its lights on a Schedule:File (column 2 of ``csv_name``), simulated for January."""
    text = _january(sample_idf("one_zone_box").read_text())
    text = text.replace("  Office Lights,Office,OfficeGains,", "  Office Lights,Office,Lighting From File,")
    return text + f"""
Schedule:File,
  Lighting From File,      !- Name
  Fraction,                !- Schedule Type Limits Name
  {csv_name},              !- File Name
  2,                       !- Column Number
  1,                       !- Rows to Skip at Top
  8760,                    !- Number of Hours of Data
  Comma;                   !- Column Separator
"""


def write_schedule(path: Path, fraction: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("hour,fraction\n" + "".join(f"{h + 1},{fraction}\n" for h in range(8760)))
    return path


def cli(*args: str, cwd: Path) -> tuple[int, list[dict]]:
    proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate", *args, "--json"], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def codes(out: dict, severity: str | None = None) -> list[str]:
    return [m["code"] for m in out["messages"] if severity is None or m["severity"] == severity]


# --- Schedule:File sidecars ---------------------------------------------------------------------------------------


def test_cli_folder_runs_models_with_their_schedule_files(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "half.idf").write_text(schedule_model("schedules/half.csv"))
    (folder / "quarter.idf").write_text(schedule_model("schedules\\quarter.csv"))  # written on Windows
    write_schedule(folder / "schedules" / "half.csv", 0.5)
    write_schedule(folder / "schedules" / "quarter.csv", 0.25)
    for name in ("half.idf", "quarter.idf"):
        (folder / f"{name}.validation.yaml").write_text("weather: Golden\n")

    rc, outs = cli(str(folder), cwd=tmp_path)

    assert rc == 0, outs
    by_name = {o["outputs"]["file_name"]: o for o in outs}
    lighting = {}
    for name, out in by_name.items():
        assert out["status"] == "success", out["messages"]
        lighting[name] = out["outputs"]["metrics"]["interior_lighting_kwh"]
    # The CSV's values drive the lights: 0.5 and 0.25 of 1 kW for every January hour.
    assert lighting["half.idf"] == pytest.approx(0.5 * LIGHTS_KW * JANUARY_HOURS, rel=0.01)
    assert lighting["quarter.idf"] == pytest.approx(0.25 * LIGHTS_KW * JANUARY_HOURS, rel=0.01)


def test_missing_unsafe_and_linked_schedule_files_fail_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "missing.idf").write_text(schedule_model("schedules/nowhere.csv"))
    (tmp_path / "climbs.idf").write_text(schedule_model("../secrets.csv"))
    (tmp_path / "absolute.idf").write_text(schedule_model("/etc/hostname"))
    (tmp_path / "linked.idf").write_text(schedule_model("linked.csv"))
    os.symlink("/etc/hostname", tmp_path / "linked.csv")
    (tmp_path / "reserved.idf").write_text(schedule_model("out/eplusout.csv"))  # the worker's output folder
    write_schedule(tmp_path / "out" / "eplusout.csv", 0.5)
    spec = tmp_path / "spec.yaml"
    spec.write_text("weather: Golden\n")

    rc, outs = cli(*(str(tmp_path / f"{n}.idf") for n in ("missing", "climbs", "absolute", "linked", "reserved")),
                   "--spec", str(spec), cwd=tmp_path)

    assert rc == 1
    expected = {"missing.idf": ("EP_FILE_MISSING", "schedules/nowhere.csv", "upload it next to missing.idf"),
                "climbs.idf": ("EP_UNSAFE_OBJECT", "../secrets.csv", "upload it next to the model"),
                "absolute.idf": ("EP_UNSAFE_OBJECT", "/etc/hostname", "relative to the model"),
                "linked.idf": ("EP_FILE_UNSAFE", "linked.csv", "copy the file itself"),
                "reserved.idf": ("EP_FILE_UNSAFE", "out/eplusout.csv", "rename it")}
    assert len(outs) == len(expected)
    for out in outs:
        code, file, fix = expected[out["outputs"]["file_name"]]
        assert out["status"] == "failed_validation"
        text = " ".join(m["text"] for m in out["messages"] if m["code"] == code)
        assert file in text and fix in text and out["outputs"]["file_name"] in text, out["messages"]


def test_oversize_schedule_file_is_refused_before_any_run(tmp_path: Path) -> None:
    from validibot_pipelines.orchestration.models import intake
    from validibot_pipelines.validators.energyplus.intake import EnergyPlusLimits

    model = tmp_path / "big.idf"
    model.write_text(schedule_model("big.csv"))
    write_schedule(tmp_path / "big.csv", 0.5)  # ~100 KiB
    (tmp_path / "big.idf.validation.yaml").write_text("weather: Golden\n")
    record = intake(model.as_uri(), store_uri=(tmp_path / "store").as_uri(),
                    spec_uri=(tmp_path / "big.idf.validation.yaml").as_uri(),
                    limits={"energyplus": EnergyPlusLimits(file_max_bytes=64 * 1024)})
    assert record.status == "failed_validation"
    (finding,) = [f for f in record.findings if f.code == "EP_FILE_TOO_LARGE"]
    assert "big.csv" in finding.text and "64.0 KiB" in finding.text and "energyplus_file_max_bytes" in finding.text


def test_schedule_file_is_stored_by_checksum_as_a_resource(tmp_path: Path) -> None:
    import hashlib

    from validibot_pipelines.orchestration.models import intake
    from validibot_pipelines.storage import get_store

    model = tmp_path / "my project" / "box.idf"  # spaces, '#' and '%' are file names, not URI syntax
    model.parent.mkdir()
    model.write_text(schedule_model("schedules/half day #1 50%.csv"))
    csv = write_schedule(model.parent / "schedules" / "half day #1 50%.csv", 0.5)
    (model.parent / "box.idf.validation.yaml").write_text("weather: Golden\n")
    record = intake(model.as_uri(), store_uri=(tmp_path / "store").as_uri(),
                    spec_uri=(model.parent / "box.idf.validation.yaml").as_uri())
    assert record.accepted, record.findings
    (item,) = [r for r in record.resources if r.role == "model-file:schedules/half day #1 50%.csv"]
    assert item.sha256 == hashlib.sha256(csv.read_bytes()).hexdigest() and item.size_bytes == csv.stat().st_size
    assert get_store(item.uri).read_bytes(item.uri) == csv.read_bytes()


def test_dagster_run_with_a_schedule_file_next_to_the_model(pipeline, tmp_path: Path) -> None:  # noqa: ANN001
    model = tmp_path / "scheduled.idf"
    model.write_text(schedule_model("schedules/lighting.csv"))
    pipeline.drop(write_schedule(tmp_path / "lighting.csv", 0.5), name="site/schedules/lighting.csv")
    pipeline.drop(model, name="site/scheduled.idf", spec="weather: Golden\n")

    (o,) = pipeline.tick()  # the CSV is not a model: one run

    assert o.success, errors(o, "energyplus_simulation")
    metrics = o.outputs["energyplus_simulation"]["outputs"]["metrics"]
    assert metrics["interior_lighting_kwh"] == pytest.approx(0.5 * LIGHTS_KW * JANUARY_HOURS, rel=0.01)


# --- fail_on_severe ----------------------------------------------------------------------------------------------


def test_severe_errors_warn_by_default_and_fail_with_fail_on_severe(tmp_path: Path) -> None:
    model = tmp_path / "severe.idf"
    model.write_text(_january(sample_idf("one_zone_box").read_text())
                     + "\nOutput:PreprocessorMessage, test, Severe, deliberate severe message for a test;\n")
    default, strict = tmp_path / "default.yaml", tmp_path / "strict.yaml"
    default.write_text("weather: Golden\n")
    strict.write_text("weather: Golden\nfail_on_severe: true\n")

    rc, (warned,) = cli(str(model), "--spec", str(default), cwd=tmp_path)
    assert rc == 0 and warned["status"] == "success", warned["messages"]
    assert "EP_SEVERE" in codes(warned, "WARNING") and "EP_SEVERE" not in codes(warned, "ERROR")

    rc, (failed,) = cli(str(model), "--spec", str(strict), cwd=tmp_path)
    assert rc == 1 and failed["status"] == "failed_validation"
    (error,) = [m for m in failed["messages"] if m["code"] == "EP_SEVERE"]
    assert error["severity"] == "ERROR" and "deliberate severe message" in error["text"]
    assert "severe.idf" in error["text"] and "fail_on_severe" in error["text"]


# --- HVACTemplate epJSON -----------------------------------------------------------------------------------------


def hvac_template_epjson(heating_setpoint: float) -> dict:
    """The one-zone box as epJSON, conditioned by HVACTemplate:Zone:IdealLoadsAirSystem + HVACTemplate:Thermostat
    instead of the expanded ideal-loads objects."""
    model = json.loads(sample_idf("one_zone_box", ".epJSON").read_text())
    for key in ("ZoneControl:Thermostat", "ZoneHVAC:EquipmentConnections", "ZoneHVAC:IdealLoadsAirSystem",
                "ZoneHVAC:EquipmentList", "NodeList", "ThermostatSetpoint:DualSetpoint"):
        model.pop(key)
    model["HVACTemplate:Thermostat"] = {"Office Tstat": {"constant_heating_setpoint": heating_setpoint,
                                                         "constant_cooling_setpoint": 24}}
    model["HVACTemplate:Zone:IdealLoadsAirSystem"] = {"Office Ideal": {"zone_name": "Office",
                                                                      "template_thermostat_name": "Office Tstat"}}
    next(iter(model["RunPeriod"].values()))["end_month"] = 1
    return model


def test_epjson_with_hvac_templates_runs(tmp_path: Path) -> None:
    for setpoint in (20, 15):
        (tmp_path / f"tmpl{setpoint}.epJSON").write_text(json.dumps(hvac_template_epjson(setpoint)))
    spec = tmp_path / "spec.yaml"
    spec.write_text("weather: Golden\n")

    rc, outs = cli(str(tmp_path / "tmpl20.epJSON"), str(tmp_path / "tmpl15.epJSON"), "--spec", str(spec),
                   cwd=tmp_path)

    assert rc == 0, outs
    heating = {}
    for out in outs:
        assert out["status"] == "success" and "EP_HVACTEMPLATE_EXPANDED" in codes(out, "INFO"), out["messages"]
        heating[out["outputs"]["file_name"]] = out["outputs"]["metrics"]["heating_kwh"]
    # The templates' thermostat really conditions the zone: a lower heating setpoint needs less heat.
    assert heating["tmpl20.epJSON"] > heating["tmpl15.epJSON"] > 0


# --- .imf macro models -------------------------------------------------------------------------------------------


def imf_folder(folder: Path) -> Path:
    """The one-zone box as ``box.imf``: constructions in ``parts/constructions.inc`` (which ``##include`` s the
    materials from ``parts/materials.inc``), everything else in the macro file itself."""
    text = _january(sample_idf("one_zone_box").read_text())
    start, geometry = text.index("Material,Concrete 200mm"), text.index("!- ===================== Geometry")
    constructions = text.index("WindowMaterial:SimpleGlazingSystem")
    (folder / "parts").mkdir(parents=True)
    (folder / "parts" / "materials.inc").write_text(text[start:constructions])
    (folder / "parts" / "constructions.inc").write_text("##include parts/materials.inc\n"
                                                        + text[constructions:geometry])
    model = folder / "box.imf"
    model.write_text(text[:start] + "##include parts/constructions.inc\n" + text[geometry:])
    (folder / "box.imf.validation.yaml").write_text("weather: Golden\n")
    return model


def test_imf_with_nested_includes_runs_like_the_plain_model(tmp_path: Path) -> None:
    model = imf_folder(tmp_path / "macro")
    plain = tmp_path / "plain" / "box.idf"
    plain.parent.mkdir()
    plain.write_text(_january(sample_idf("one_zone_box").read_text()))
    (plain.parent / "box.idf.validation.yaml").write_text("weather: Golden\n")

    rc, outs = cli(str(model), str(plain), cwd=tmp_path)

    assert rc == 0, outs
    macro, idf = outs
    assert macro["status"] == "success" and "EP_MACRO_EXPANDED" in codes(macro, "INFO"), macro["messages"]
    assert macro["outputs"]["metrics"]["site_eui_kwh_m2"] == pytest.approx(
        idf["outputs"]["metrics"]["site_eui_kwh_m2"], rel=1e-6)


def test_imf_problems_fail_naming_the_file(tmp_path: Path) -> None:
    missing = imf_folder(tmp_path / "missing")
    (missing.parent / "parts" / "materials.inc").unlink()
    unsafe = tmp_path / "unsafe.imf"
    unsafe.write_text("Version,25.2;\n##include /etc/hostname\n")
    prefix = tmp_path / "prefix.imf"
    prefix.write_text("Version,25.2;\n##fileprefix /etc/\n##include hostname\n")
    plugin = imf_folder(tmp_path / "plugin")  # the include smuggles in an object intake never saw
    with open(plugin.parent / "parts" / "materials.inc", "a") as fh:
        fh.write("\nPythonPlugin:Instance, Evil, No, evil_module, EvilClass;\n")
    broken = tmp_path / "broken.imf"  # EPMacro only writes an Output:PreprocessorMessage for a bad directive
    broken.write_text(_january(sample_idf("one_zone_box").read_text()) + "\n##bogus directive\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("weather: Golden\n")

    rc, outs = cli(str(missing), str(unsafe), str(prefix), str(plugin), str(broken), "--spec", str(spec),
                   cwd=tmp_path)

    assert rc == 1
    found = [(o["status"], " ".join(f"[{m['code']}] {m['text']}" for m in o["messages"])) for o in outs]
    (missing_out, unsafe_out, prefix_out, plugin_out, broken_out) = found
    assert broken_out[0] == "failed_validation" and "[EP_MACRO_FAILED]" in broken_out[1]
    assert "broken.imf" in broken_out[1] and "unrecognizible macro command" in broken_out[1]
    assert missing_out[0] == "failed_validation" and "[EP_FILE_MISSING]" in missing_out[1]
    assert "parts/materials.inc" in missing_out[1]
    assert unsafe_out[0] == "failed_validation" and "[EP_UNSAFE_OBJECT]" in unsafe_out[1]
    assert "/etc/hostname" in unsafe_out[1] and "unsafe.imf" in unsafe_out[1]
    assert prefix_out[0] == "failed_validation" and "##fileprefix" in prefix_out[1]
    assert plugin_out[0] == "failed_validation" and "[EP_UNSAFE_OBJECT]" in plugin_out[1]
    assert "expanded by EPMacro" in plugin_out[1] and "PythonPlugin:Instance" in plugin_out[1]


# --- the packaged engine ----------------------------------------------------------------------------------------


def test_helper_tools_become_executable_without_touching_the_package(tmp_path: Path) -> None:
    from validibot_pipelines.validators.energyplus.worker import install
    from validibot_pipelines.validators.energyplus.worker.preprocess import executable_tool

    for name in ("EPMacro", "ConvertInputFormat"):
        shipped = install.payload_dir() / name
        tool = executable_tool(name, tmp_path / "tools")
        assert os.access(tool, os.X_OK) and tool.read_bytes() == shipped.read_bytes()
        assert tool == shipped or tool.parent == tmp_path / "tools"


def test_the_packaged_engine_ships_no_transition_programs() -> None:
    """Why EP_VERSION_MISMATCH tells the user what to run instead of the workers updating the model: if a new
    engine package ships IDFVersionUpdater, this fails, and automatic transition becomes possible."""
    from validibot_pipelines.validators.energyplus.worker import install

    assert not list(install.payload_dir().rglob("Transition-V*"))


def test_version_mismatch_says_exactly_what_to_run(tmp_path: Path) -> None:
    from validibot_pipelines.validators.energyplus.intake import check_energyplus, transition_programs

    assert transition_programs("23.2", "25.2") == ["Transition-V23-2-0-to-V24-1-0", "Transition-V24-1-0-to-V24-2-0",
                                                   "Transition-V24-2-0-to-V25-1-0", "Transition-V25-1-0-to-V25-2-0"]
    assert transition_programs("9.6.0", "25.2")[0] == "Transition-V9-6-0-to-V22-1-0"
    old = tmp_path / "old.idf"
    old.write_text(sample_idf("one_zone_box").read_text().replace("Version,25.2;", "Version,24.2;"))
    (warning,) = check_energyplus(old, "old.idf").warnings
    assert warning.code == "EP_VERSION_MISMATCH"
    assert warning.text.startswith("old.idf: declares EnergyPlus version 24.2")
    assert ("PreProcess/IDFVersionUpdater" in warning.text and "./Transition-V24-2-0-to-V25-1-0 model.idf, then "
            "./Transition-V25-1-0-to-V25-2-0 model.idf" in warning.text)
    new = tmp_path / "new.epJSON"
    model = json.loads(sample_idf("one_zone_box", ".epJSON").read_text())
    model["Version"] = {"Version 1": {"version_identifier": "26.1"}}
    new.write_text(json.dumps(model))
    (warning,) = check_energyplus(new, "new.epJSON").warnings
    assert "no downgrade" in warning.text and "export it for EnergyPlus 25.2" in warning.text
    model["Version"] = {"Version 1": {"version_identifier": "22.1"}}
    new.write_text(json.dumps(model))
    (warning,) = check_energyplus(new, "new.epJSON").warnings
    assert "ConvertInputFormat model.epJSON" in warning.text and "Transition-V22-1-0-to-V22-2-0" in warning.text


def test_dagster_run_of_an_imf_with_its_include_files(pipeline, tmp_path: Path) -> None:  # noqa: ANN001
    model = imf_folder(tmp_path / "macro")
    for part in ("materials.inc", "constructions.inc"):
        pipeline.drop(model.parent / "parts" / part, name=f"macro/parts/{part}")
    pipeline.drop(model, name="macro/box.imf", spec="weather: Golden\n")
    from validibot_pipelines.sensors.landing import scan

    assert scan(pipeline.landing_uri, None).skipped == []  # the .inc files ride along, no "no validator" note

    (o,) = pipeline.tick()  # one run: the model

    assert o.success, errors(o, "energyplus_simulation")
    sim = o.outputs["energyplus_simulation"]
    assert "EP_MACRO_EXPANDED" in [m["code"] for m in sim["messages"]]
    assert sim["outputs"]["metrics"]["simulated_conditioned_area_m2"] == pytest.approx(100.0, rel=1e-3)
