"""The FMI flow through Dagster for real: upload sensor → dynamic partitions → runs → assets → asset checks.

Each test uses a real SQLite Dagster instance, a local landing zone/store, and the local-subprocess worker.
"""

from __future__ import annotations

import base64
import hashlib
import math
import zipfile
from pathlib import Path

import pandas as pd
from dagster import AssetKey, AssetRecordsFilter

from tests.outcomes import NO_REFERENCE, errors
from validibot_pipelines.local_runner import run_partition
from validibot_pipelines.storage import get_store


def _lag(t: float, k: float = 2.0, u: float = 3.0, tau: float = 0.5) -> float:
    return k * u * (1 - math.exp(-t / tau))


def _materialization(pipeline, asset: str, partition: str):  # noqa: ANN001, ANN202
    records = pipeline.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1).records
    assert records, f"{asset} was not materialized for {partition}"
    return records[0].asset_materialization


def test_sensor_runs_assets_and_checks(pipeline, sample_fmus, sample_specs):  # noqa: ANN001
    pipeline.drop(sample_fmus["first_order_lag"], spec=sample_specs / "first_order_lag.validation.yaml")
    pipeline.drop(sample_fmus["multi_output"], spec=sample_specs / "multi_output.validation.yaml")

    outcomes = pipeline.tick()

    assert len(outcomes) == 2
    assert sorted(pipeline.partitions()) == sorted(o.partition_key for o in outcomes)
    by_name = {o.outputs["fmu_intake"]["file_name"]: o for o in outcomes}
    lag = by_name["first_order_lag.fmu"]
    assert lag.success
    assert lag.checks == {"intake_accepted": (True, "accepted"), "probe_approved": (True, "success"),
                          "simulation_succeeded": (True, "success"),
                          "cel_assertions": (True, "2/2 assertions passed"),
                          "matches_reference": (True, NO_REFERENCE)}
    sim = lag.outputs["fmu_simulation"]
    assert abs(sim["outputs"]["output_values"]["y"] - _lag(3.0)) < 1e-9
    assert [a["passed"] for a in sim["assertions"]] == [True, True]

    # The full time series is a parquet artifact in the store and matches the analytic answer.
    ts_uri = sim["outputs"]["timeseries_uri"]
    local = Path(ts_uri.removeprefix("file://"))
    frame = pd.read_parquet(local)
    assert len(frame) == 301
    assert max(abs(y - _lag(t)) for t, y in zip(frame["time"], frame["y"], strict=True)) < 1e-9

    # Metadata an analyst reads: the variable catalog as a table, output values, URI and plot.
    probe = _materialization(pipeline, "fmu_probe", lag.partition_key)
    names = [r.data["name"] for r in probe.metadata["variables"].records]
    assert names == ["u", "k", "tau", "y"]
    multi = by_name["multi_output.fmu"]
    assert multi.success and all(passed for passed, _ in multi.checks.values())
    values = multi.outputs["fmu_simulation"]["outputs"]["output_values"]
    assert abs(values["ramp"] - 3.0) < 1e-9 and abs(values["wave"] - math.sin(4.0)) < 1e-9
    assert values["steps"] == 200 and values["positive"] is False


def test_simulation_metadata_has_table_uri_and_plot(pipeline, sample_fmus):  # noqa: ANN001
    pipeline.drop(sample_fmus["first_order_lag"])  # no spec: DefaultExperiment, all outputs, no assertions
    (outcome,) = pipeline.tick()
    mat = _materialization(pipeline, "fmu_simulation", outcome.partition_key)
    assert mat.metadata["status"].value == "success"
    assert mat.metadata["timeseries_uri"].value.endswith("timeseries.parquet")
    assert get_store(mat.metadata["timeseries_uri"].value).exists(mat.metadata["timeseries_uri"].value)
    # The plot is the PNG the worker drew into the bundle (listed, with its checksum, on the output envelope).
    sim = outcome.outputs["fmu_simulation"]
    png = get_store(sim["outputs"]["plot_uri"]).read_bytes(sim["outputs"]["plot_uri"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    embedded = base64.b64encode(png).decode()
    assert mat.metadata["plot"].value == f"![first_order_lag.fmu](data:image/png;base64,{embedded})"
    (artifact,) = [a for a in sim["artifacts"] if a["name"] == "plot.png"]
    assert artifact["sha256"] == hashlib.sha256(png).hexdigest() and artifact["mime_type"] == "image/png"
    # A plot_uri that is not one of the envelope's (checked) artifacts is not embedded.
    from validibot_pipelines.envelopes import OutputEnvelope
    from validibot_pipelines.orchestration.models import ModelRecord
    from validibot_pipelines.validators.fmi.assets import _present_simulation

    record = ModelRecord.model_validate(outcome.outputs["fmu_intake"])
    stored = OutputEnvelope.model_validate({k: v for k, v in sim.items() if k != "assertions"})
    up = {"fmu_probe": outcome.outputs["fmu_probe"]}
    assert "plot" in _present_simulation(record, up, stored, {}).metadata
    stored.artifacts = [a for a in stored.artifacts if a.name != "plot.png"]
    assert "plot" not in _present_simulation(record, up, stored, {}).metadata
    rows = {r.data["variable"]: r.data["value"] for r in mat.metadata["output_values"].records}
    assert abs(float(rows["y"]) - _lag(3.0, u=1.0)) < 1e-9  # default u = 1, stop 3 s from DefaultExperiment
    assert outcome.checks["cel_assertions"] == (True, "no assertions in the spec")
    # The worker's log lines reached the Dagster run log through Dagster Pipes.
    messages = [e.user_message for e in pipeline.instance.all_logs(outcome.run_id)]
    assert any("probe first_order_lag.fmu: FMI 2.0" in m for m in messages)
    assert any("simulated first_order_lag.fmu to t=3.0" in m for m in messages)


def test_identical_reupload_adds_no_partition_and_no_run(pipeline, sample_fmus):  # noqa: ANN001
    pipeline.drop(sample_fmus["first_order_lag"])
    assert len(pipeline.tick()) == 1
    pipeline.drop(sample_fmus["first_order_lag"])  # the same bytes under the same name: nothing to do
    assert pipeline.tick() == []
    assert pipeline.partitions() == ["first_order_lag.fmu"]
    # The same bytes under another name are another model (a partition of its own); its verdict is replayed.
    pipeline.drop(sample_fmus["first_order_lag"], name="copy.fmu")
    (other,) = pipeline.tick()
    assert other.partition_key == "copy.fmu" and other.success
    assert sorted(pipeline.partitions()) == ["copy.fmu", "first_order_lag.fmu"]


def test_changed_spec_revalidates_same_partition(pipeline, sample_fmus):  # noqa: ANN001
    uri = pipeline.drop(sample_fmus["first_order_lag"])
    (first,) = pipeline.tick()
    get_store(uri).write_bytes(uri + ".validation.yaml", b"assertions:\n  - {name: big, expr: 'o.y > 100.0'}\n")
    (second,) = pipeline.tick()
    assert second.partition_key == first.partition_key
    assert second.checks["cel_assertions"][0] is False
    assert len(pipeline.partitions()) == 1


def test_backfill_reuses_canonical_copy(pipeline, sample_fmus):  # noqa: ANN001
    uri = pipeline.drop(sample_fmus["multi_output"])
    (first,) = pipeline.tick()
    get_store(uri).delete(uri)  # the landing file is gone; the canonical copy by checksum remains
    again = run_partition(pipeline.defs, pipeline.instance, "fmi_validation", first.partition_key)
    assert again.success
    assert again.outputs["fmu_simulation"]["status"] == "success"


def _zip_with(path: Path, extra: dict[str, bytes], out: Path) -> Path:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        for name, data in extra.items():
            dst.writestr(name, data)
    return out


def test_bad_inputs_fail_clearly_and_block_nothing(pipeline, sample_fmus, tmp_path):  # noqa: ANN001
    good = pipeline.drop(sample_fmus["first_order_lag"])
    crash = pipeline.drop(sample_fmus["crash"])
    hang = pipeline.drop(sample_fmus["hang"])
    exe = pipeline.drop(_zip_with(sample_fmus["multi_output"], {"tools/setup.exe": b"MZ"}, tmp_path / "exe.fmu"))
    not_zip = tmp_path / "notzip.fmu"
    not_zip.write_bytes(b"this is not a zip archive")
    notzip = pipeline.drop(not_zip)
    bad_spec = pipeline.drop(_zip_with(sample_fmus["multi_output"], {"docs/readme.txt": b"x"}, tmp_path / "bs.fmu"),
                             spec="assertions: [unclosed\n")
    unknown_out = pipeline.drop(_zip_with(sample_fmus["multi_output"], {"docs/a.txt": b"y"}, tmp_path / "uo.fmu"),
                                spec="outputs: [nope]\n")
    cel_bad = pipeline.drop(_zip_with(sample_fmus["multi_output"], {"docs/b.txt": b"z"}, tmp_path / "cel.fmu"),
                            spec="assertions:\n  - {name: syntax, expr: 'o.ramp >'}\n"
                                 "  - {name: missing, expr: 'o.nothing > 1.0'}\n")
    pipeline.drop(tmp_path.joinpath("x.txt"), name="notes.txt") if tmp_path.joinpath("x.txt").write_text("hi") else None

    outcomes = {o.source_uri: o for o in pipeline.tick()}

    assert outcomes[good].success and outcomes[good].checks["cel_assertions"][0]
    assert outcomes[crash].outputs["fmu_simulation"]["status"] == "failed_validation"
    crash_text = errors(outcomes[crash], "fmu_simulation")
    assert "crashed" in crash_text and "SIGSEGV" in crash_text
    assert outcomes[hang].outputs["fmu_simulation"]["status"] == "failed_validation"
    assert "did not finish within 3 s" in errors(outcomes[hang], "fmu_simulation")
    for uri, needle in [(exe, "setup.exe"), (notzip, "notzip.fmu"), (bad_spec, "bs.fmu.validation.yaml")]:
        o = outcomes[uri]
        assert not o.success and o.checks["intake_accepted"][0] is False, uri
        assert o.outputs["fmu_intake"]["status"] == "failed_validation"
        assert needle in errors(o, "fmu_intake"), errors(o, "fmu_intake")
        assert "fmu_probe" not in o.outputs  # blocking check: never probed, never simulated
    uo = outcomes[unknown_out].outputs["fmu_simulation"]
    assert uo["status"] == "failed_validation" and "'nope' does not exist" in errors(outcomes[unknown_out],
                                                                                    "fmu_simulation")
    cel = outcomes[cel_bad]
    assert cel.checks["cel_assertions"][0] is False
    results = {a["name"]: a for a in cel.outputs["fmu_simulation"]["assertions"]}
    assert not results["syntax"]["passed"] and results["syntax"]["error"]
    assert not results["missing"]["passed"] and "nothing" in results["missing"]["error"]
    # Nothing in the landing zone was lost.
    landing = {o.uri for o in get_store(pipeline.landing_uri).list(pipeline.landing_uri)}
    assert {good, crash, hang, exe, notzip, bad_spec, unknown_out, cel_bad} <= landing


def _rewrite(src: Path, out: Path, *, drop: str | None = None, md=None, extra=None) -> Path:  # noqa: ANN001
    """Copy an FMU, optionally dropping a member, transforming modelDescription.xml or adding members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename == drop:
                continue
            data = zin.read(info)
            if md and info.filename == "modelDescription.xml":
                data = md(data)
            zout.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return out


def _bomb(src: Path, out: Path) -> Path:
    _rewrite(src, out)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as z:
        with z.open("resources/zeros.bin", "w", force_zip64=True) as f:
            for _ in range(200):
                f.write(bytes(1 << 20))
    return out


def test_every_intake_rejection_lands_as_failed_validation(pipeline, sample_fmus, tmp_path):  # noqa: ANN001
    lag = sample_fmus["first_order_lag"]
    truncated = tmp_path / "truncated.fmu"
    truncated.write_bytes(lag.read_bytes()[: lag.stat().st_size // 2])
    cases = {
        "truncated.fmu": (truncated, "FMU_TRUNCATED"),
        "nomd.fmu": (_rewrite(lag, tmp_path / "nomd.fmu", drop="modelDescription.xml"), "FMU_NO_MODEL_DESCRIPTION"),
        "latin1.fmu": (_rewrite(lag, tmp_path / "latin1.fmu", md=lambda d: d.replace(
            b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(b'description="', b'description="\xe9')),
            "FMU_XML_NOT_UTF8"),
        "xxe.fmu": (_rewrite(lag, tmp_path / "xxe.fmu", md=lambda d: d.replace(
            b"<fmiModelDescription", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<fmiModelDescription',
            1)), "FMU_XML_UNSAFE"),
        "slip.fmu": (_rewrite(lag, tmp_path / "slip.fmu", extra={"../evil.txt": b"x"}), "FMU_UNSAFE_PATH"),
        "bomb.fmu": (_bomb(lag, tmp_path / "bomb.fmu"), "FMU_ZIP_BOMB"),
    }
    uris = {name: pipeline.drop(path, name=name) for name, (path, _) in cases.items()}
    outcomes = {o.source_uri: o for o in pipeline.tick()}
    assert len(outcomes) == len(cases)
    for name, (_, code) in cases.items():
        o = outcomes[uris[name]]
        intake = o.outputs["fmu_intake"]
        assert intake["status"] == "failed_validation", name
        findings = [f for f in intake["findings"] if f["code"] == code]
        assert findings and findings[0]["text"].startswith(f"{name}: "), (name, intake["findings"])
        assert o.checks["intake_accepted"][0] is False and "fmu_probe" not in o.outputs
        assert not get_store(pipeline.store_uri).exists(f"{pipeline.store_uri}/models/{o.partition_key}/{name}")


def test_oversize_upload_is_rejected_without_blocking_others(tmp_path, sample_fmus):  # noqa: ANN001
    from dagster import instance_for_test

    from tests.conftest import Pipeline

    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        small = Pipeline(instance, (tmp_path / "landing").as_uri(), (tmp_path / "store").as_uri(),
                         fmu_max_bytes=sample_fmus["multi_output"].stat().st_size + 1)
        big = tmp_path / "big.fmu"
        _rewrite(sample_fmus["first_order_lag"], big, extra={"resources/pad.bin": __import__("os").urandom(20000)})
        big_uri, ok_uri = small.drop(big), small.drop(sample_fmus["multi_output"])
        outcomes = {o.source_uri: o for o in small.tick()}
        rejected = outcomes[big_uri].outputs["fmu_intake"]
        assert rejected["status"] == "failed_validation"
        assert rejected["findings"][0]["code"] == "FMU_TOO_LARGE" and "big.fmu" in rejected["findings"][0]["text"]
        assert outcomes[ok_uri].success


def test_spec_input_timeseries_uploaded_next_to_the_model_drives_the_inputs(pipeline, sample_fmus, tmp_path):  # noqa: ANN001
    """`input_timeseries: u.csv` in the spec: the CSV beside the model is stored by checksum, staged for the
    worker like the FMU, and drives u (0 until t = 1 s, then 3); a missing CSV is a clear failed_validation."""
    csv = tmp_path / "u_step.csv"
    csv.write_text("time,u\n0,0\n1,0\n1,3\n3,3\n")
    pipeline.drop(csv)
    spec = "simulation: {stop_time: 3, step_size: 0.01}\ninput_timeseries: u_step.csv\n"
    good = pipeline.drop(sample_fmus["first_order_lag"], spec=spec)
    missing = pipeline.drop(_zip_with(sample_fmus["first_order_lag"], {"docs/m.txt": b"m"}, tmp_path / "m.fmu"),
                            spec="input_timeseries: nowhere.csv\n")
    outcomes = {o.source_uri: o for o in pipeline.tick()}
    assert len(outcomes) == 2  # the CSV rides along with its model; it is not a model itself
    run = outcomes[good]
    assert run.success, run.outputs
    (resource,) = run.outputs["fmu_intake"]["resources"]
    assert resource["role"] == "input-timeseries" and resource["name"] == "u_step.csv"
    y = run.outputs["fmu_simulation"]["outputs"]["output_values"]["y"]
    assert abs(y - 6 * (1 - math.exp(-4))) < 0.05 and abs(y - _lag(3.0)) > 0.05
    rejected = outcomes[missing].outputs["fmu_intake"]
    assert rejected["status"] == "failed_validation"
    (finding,) = [f for f in rejected["findings"] if f["code"] == "INPUT_TIMESERIES_NOT_FOUND"]
    assert "nowhere.csv" in finding["text"] and "m.fmu" in finding["text"]
