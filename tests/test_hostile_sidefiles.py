"""Hostile side files and models: input time series CSVs, EPW weather files, deeply nested epJSON, pathological IDF.

Each is refused in the control plane before a worker is launched, as ``failed_validation`` with a short message
that names the file, the problem and the fix — driven through the real Dagster pipeline (sensor, partitions,
assets) and the ``validibot validate`` command. Every fixture is built here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

from tests.outcomes import errors
from validibot_pipelines.storage import get_store
from validibot_pipelines.validators.energyplus.idf import normalise_idf, parse_idf
from validibot_pipelines.validators.energyplus.samples import sample_idf
from validibot_pipelines.validators.fmi.timeseries import check_input_timeseries

MAX_MESSAGE = 600  # a finding is a sentence or two, never a traceback or a dump of the file


def _variant(fmu: Path, out: Path) -> Path:
    """A byte-distinct copy of an FMU (its own partition), with a harmless extra member."""
    with zipfile.ZipFile(fmu) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("documentation/variant.txt", out.name)
    return out


def _assert_clear(text: str, *needles: str) -> None:
    assert len(text) < MAX_MESSAGE, text
    assert "Traceback" not in text and "RecursionError" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)


def _never_launched(pipeline, outcome, step: str) -> None:  # noqa: ANN001
    runs = f"{pipeline.store_uri}/runs"
    launched = [o.uri for o in get_store(runs).list(runs)]  # every bundle of every step that was launched
    assert not any(f"{outcome.partition_key[:16]}-{step}-" in uri for uri in launched), launched


CSV_CASES = {  # CSV name -> (content, what the message must say)
    "letters.csv": (b"time,u\n0,0\n1,abc\n", ["line 3", "'u'", "'abc'", "not a number"]),
    "backwards.csv": (b"time,u\n0,0\n2,1\n1,1\n", ["line 4", "before the previous", "sort the rows"]),
    "typo.csv": (b"time,uu\n0,1\n", ["'uu'", "not an input of the FMU", "u"]),
    "notime.csv": (b"t,u\n0,1\n", ["'t'", "not 'time'"]),
    "ragged.csv": (b"time,u\n0,1\n1\n", ["line 3", "1 cells", "2 columns"]),
    "garbage.csv": (bytes(range(256)) * 64, ["binary"]),
    "oneline.csv": (b"time,u\n" + b"1," * 700_000, ["line 2", "longer than"]),
}


def test_bad_input_timeseries_fail_validation_before_launch(pipeline, sample_fmus, tmp_path):  # noqa: ANN001
    uris = {}
    for index, (name, (content, _)) in enumerate(CSV_CASES.items()):
        csv = tmp_path / name
        csv.write_bytes(content)
        pipeline.drop(csv)
        fmu = _variant(sample_fmus["first_order_lag"], tmp_path / f"lag{index}.fmu")
        spec = f"simulation: {{stop_time: 1, step_size: 0.1}}\ninput_timeseries: {name}\n"
        uris[name] = pipeline.drop(fmu, spec=spec)
    outcomes = {o.source_uri: o for o in pipeline.tick()}
    assert len(outcomes) == len(CSV_CASES)
    for name, (_, needles) in CSV_CASES.items():
        o = outcomes[uris[name]]
        assert o.outputs["fmu_probe"]["status"] == "success"  # the FMU itself is fine
        sim = o.outputs["fmu_simulation"]
        assert sim["status"] == "failed_validation", (name, sim)
        assert o.checks["simulation_succeeded"][0] is False
        (message,) = sim["messages"]
        assert message["code"] == "INPUT_TIMESERIES_INVALID", (name, message)
        _assert_clear(message["text"], f"{name}: ", f"lag{list(CSV_CASES).index(name)}.fmu", *needles)
        _never_launched(pipeline, o, "simulation")


def test_timeseries_size_cap_is_a_setting(tmp_path, sample_fmus):  # noqa: ANN001
    from dagster import instance_for_test

    from tests.conftest import Pipeline

    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        p = Pipeline(instance, (tmp_path / "landing").as_uri(), (tmp_path / "store").as_uri(),
                     simulation_timeout_seconds=30, timeseries_max_bytes=1000)
        small, big = tmp_path / "small.csv", tmp_path / "big.csv"
        small.write_text("time,u\n0,0\n1,0\n1,3\n3,3\n")
        big.write_text("time,u\n" + "".join(f"{i / 100},{i % 3}\n" for i in range(300)))  # 2.5 KB > 1000 bytes
        p.drop(small)
        p.drop(big)
        spec = "simulation: {stop_time: 3, step_size: 0.01}\ninput_timeseries: %s\n"
        ok = p.drop(sample_fmus["first_order_lag"], spec=spec % "small.csv")
        capped = p.drop(_variant(sample_fmus["first_order_lag"], tmp_path / "capped.fmu"), spec=spec % "big.csv")
        outcomes = {o.source_uri: o for o in p.tick()}
        assert outcomes[ok].success, errors(outcomes[ok], "fmu_simulation")
        o = outcomes[capped]
        assert o.outputs["fmu_simulation"]["status"] == "failed_validation"
        text = errors(o, "fmu_simulation")
        _assert_clear(text, "[INPUT_TIMESERIES_TOO_LARGE]", "big.csv", "1000 bytes limit", "capped.fmu")
        _never_launched(p, o, "simulation")


def test_timeseries_check_reads_in_bounded_memory(tmp_path):  # noqa: ANN001
    """A 4 MiB CSV is checked holding well under 1 MiB: the file is streamed, never loaded whole."""
    csv = tmp_path / "long_cells.csv"
    cell = "0." + "1234567890" * 100  # few rows, long cells: cheap to trace, yet megabytes of text
    with csv.open("w") as fh:
        fh.write("time,u\n")
        for i in range(4200):
            fh.write(f"{i},{cell}\n")
    assert csv.stat().st_size > 4 * 1024 * 1024
    tracemalloc.start()
    try:
        report = check_input_timeseries(csv, csv.name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.accepted and report.facts["rows"] == 4200, report.findings
    assert peak < 1024 * 1024, f"peak {peak:,} bytes"


def test_hostile_weather_and_epjson_fail_validation(pipeline, tmp_path):  # noqa: ANN001
    garbage = tmp_path / "garbage.epw"
    garbage.write_bytes(bytes(range(256)) * 200)
    prose = tmp_path / "prose.epw"
    prose.write_text("These are not the weather data you are looking for.\n" * 50)
    pipeline.drop(garbage)
    pipeline.drop(prose)
    base = sample_idf("one_zone_box").read_text()
    models = {}
    for name in ("garbage.epw", "prose.epw"):
        model = tmp_path / f"uses_{name.split('.')[0]}.idf"
        model.write_text(base + f"\n! weather {name}\n")
        models[name] = pipeline.drop(model, spec=f"weather: {name}\n")
    deep = tmp_path / "deep.epJSON"
    deep.write_text('{"Version": {"Version 1": {"version_identifier": "25.2", "x": '
                    + "[" * 900 + "]" * 900 + "}}}")
    deep_uri = pipeline.drop(deep, spec="weather: Chicago\n")

    outcomes = {o.source_uri: o for o in pipeline.tick()}

    for name, needle in (("garbage.epw", "binary"), ("prose.epw", "LOCATION header")):
        o = outcomes[models[name]]
        assert o.checks["intake_accepted"][0] is True  # the model is fine; its weather file is not
        sim = o.outputs["energyplus_simulation"]
        assert sim["status"] == "failed_validation", sim
        (message,) = sim["messages"]
        assert message["code"] == "WEATHER_INVALID"
        _assert_clear(message["text"], f"{name}: ", needle, "upload", o.outputs["energyplus_model"]["file_name"])
        _never_launched(pipeline, o, "energyplus")
    o = outcomes[deep_uri]
    intake = o.outputs["energyplus_model"]
    assert intake["status"] == "failed_validation", intake
    assert o.checks["intake_accepted"][0] is False and "energyplus_simulation" not in o.outputs
    (finding,) = [f for f in intake["findings"] if f["code"] == "EP_SYNTAX"]
    _assert_clear(finding["text"], "deep.epJSON: ", "nested more than 32 levels", "export the model")


def test_weather_size_cap_is_a_setting(tmp_path):  # noqa: ANN001
    from dagster import instance_for_test

    from tests.conftest import Pipeline
    from validibot_pipelines.validators.energyplus.worker.install import find_shipped_weather

    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        p = Pipeline(instance, (tmp_path / "landing").as_uri(), (tmp_path / "store").as_uri(),
                     weather_max_bytes=100_000)
        epw = tmp_path / "site.epw"
        epw.write_bytes(find_shipped_weather("Tampa").read_bytes())  # 1.6 MB, a real EPW
        p.drop(epw)
        uri = p.drop(sample_idf("one_zone_box"), spec="weather: site.epw\n")
        (o,) = p.tick()
        assert o.source_uri == uri
        sim = o.outputs["energyplus_simulation"]
        assert sim["status"] == "failed_validation"
        _assert_clear(errors(o, "energyplus_simulation"), "[WEATHER_TOO_LARGE]", "site.epw", "97.7 KiB limit")
        _never_launched(p, o, "energyplus")


def _validibot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_cli_rejects_bad_timeseries_and_deep_epjson(sample_fmus, tmp_path):  # noqa: ANN001
    work = tmp_path / "models"
    work.mkdir()
    fmu = work / "lag.fmu"
    fmu.write_bytes(sample_fmus["first_order_lag"].read_bytes())
    (work / "u.csv").write_text("time,u\n0,0\n1,oops\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("input_timeseries: u.csv\n")
    proc = _validibot("validate", str(fmu), "--spec", str(spec), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "failed_validation"
    (bad,) = [m for m in out["messages"] if m["code"] == "INPUT_TIMESERIES_INVALID"]
    _assert_clear(bad["text"], "u.csv: line 3", "'oops'", "lag.fmu")

    deep = work / "deep.epJSON"
    deep.write_text("{\"Version\": " + "[" * 5000 + "]" * 5000 + "}")
    proc = _validibot("validate", str(deep), "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "failed_validation"
    _assert_clear(out["messages"][0]["text"], "deep.epJSON: ", "nested more than 32 levels")
    assert "Traceback" not in proc.stderr


def test_idf_with_many_objects_on_one_line_normalises_in_linear_time():
    """100,000 objects on one 1.1 MB line: widening each cut to "its whole line" used to rescan the line."""
    text = "Version,25.2;" + "Timestep,4;" * 100_000 + "\nBuilding,B;\n"
    started = time.monotonic()
    objects = parse_idf(text)
    normalised = normalise_idf(text, timestep_per_hour=6)
    elapsed = time.monotonic() - started
    assert len(objects) == 100_002
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert [o.fields for o in parse_idf(normalised) if o.key == "timestep"] == [["6"]]
    assert "Building,B;" in normalised and normalised.startswith("Version,25.2;")


def test_side_files_named_as_paths_or_sitting_beside_the_model_as_links_fifos_or_folders_say_which(
        sample_fmus, tmp_path):  # noqa: ANN001
    """A spec's weather, reference CSV or schema named with a path, or found beside the model as a symlink,
    FIFO or folder: refused at intake naming that (never followed, never opened — a FIFO would block), through
    ``validibot validate`` of the whole folder in one call."""
    import os

    work = tmp_path / "models"
    work.mkdir()
    outside = tmp_path / "secret.epw"
    outside.write_text("LOCATION,Nowhere\n")
    (work / "link.epw").symlink_to(outside)
    os.mkfifo(work / "pipe.epw")
    (work / "folder.epw").mkdir()
    box = sample_idf("one_zone_box").read_text()
    cases = {"link.epw": "is a symbolic link", "pipe.epw": "is not a regular file", "folder.epw": "is not a regular",
             "../secret.epw": "is not a plain file name", "/etc/passwd": "is not a plain file name"}
    for number, weather in enumerate(cases):
        model = work / f"m{number}.idf"
        model.write_text(box)
        model.with_name(model.name + ".validation.yaml").write_text(f"weather: {json.dumps(weather)}\n")
    lag = work / "lag.fmu"
    lag.write_bytes(sample_fmus["first_order_lag"].read_bytes())
    lag.with_name("lag.fmu.validation.yaml").write_text("reference: {file: ref.csv}\n")
    (work / "ref.csv").symlink_to(outside)
    proc = _validibot("validate", str(work), "--json", cwd=tmp_path)  # a blocked open would hit its timeout
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    outs = {out["outputs"]["file_name"]: out for out in map(json.loads, proc.stdout.splitlines())}
    for number, (weather, needle) in enumerate(cases.items()):
        out = outs[f"m{number}.idf"]
        assert out["status"] == "failed_validation"
        (message,) = [m for m in out["messages"] if m["code"] == "WEATHER_NOT_FOUND"]
        _assert_clear(message["text"], f"m{number}.idf: weather file '{weather}' {needle}")
    (message,) = [m for m in outs["lag.fmu"]["messages"] if m["code"] == "REFERENCE_NOT_FOUND"]
    _assert_clear(message["text"], "lag.fmu: reference result 'ref.csv' is a symbolic link", "copy the file itself")
