"""Grouped uploads: a burst of new models becomes a few sensor runs, each model still its own partition.

Through the real upload sensor and jobs (``local_runner.tick``, as the daemon would run them) on a real
instance: each run covers a range of new partitions, its worker steps make one worker launch for all of its
models, and every model keeps its own materialization, metadata and check evaluations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import AssetKey, AssetRecordsFilter

from tests.hostile_fmus import build_hostile
from validibot_pipelines.validators.fmi.samples.build import build_fmu

SPEC = "simulation: {stop_time: 3, step_size: 0.01}\ninputs: {u: 3.0}\nassertions:\n" \
       "  - {name: settles, expr: 'o.y > 5.98 && o.y < 6.0'}\n"


@pytest.fixture
def burst(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "burst"
    fmus = [build_fmu("first_order_lag", folder, variant=f"g{i}") for i in range(4)]
    fmus.append(build_hostile("kill_parent", folder))
    junk = folder / "not_a_zip.fmu"
    junk.write_bytes(b"this is not an FMU")
    fmus.append(junk)
    return fmus


def latest(pipeline, asset: str, key: str):  # noqa: ANN001, ANN201
    records = pipeline.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[key]), limit=1).records
    return records[0].asset_materialization if records else None


def test_a_burst_is_a_few_runs_and_every_model_keeps_its_own_results(pipeline, burst, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_SENSOR_BATCH_SIZE", "3")
    for fmu in burst:
        pipeline.drop(fmu, name=f"burst/{fmu.name}", spec="simulation: {stop_time: 1}\n" if "hostile" in fmu.name
                      else SPEC)
    outcomes = pipeline.tick()
    assert len({o.run_id for o in outcomes}) == 2  # six new models, three per run
    assert sorted(o.partition_key for o in outcomes) == sorted(f"burst/{f.name}" for f in burst)
    by_key = {o.partition_key: o for o in outcomes}
    for i in range(4):
        outcome = by_key[f"burst/first_order_lag-g{i}.fmu"]
        assert outcome.checks["cel_assertions"][0] and outcome.checks["simulation_succeeded"][0]
        assert 5.98 < outcome.outputs["fmu_simulation"]["outputs"]["output_values"]["y"] < 6.0
        meta = latest(pipeline, "fmu_simulation", outcome.partition_key).metadata
        assert meta["outcome"].value == "passed" and meta["model"].value == outcome.partition_key
        assert meta["batch_size"].value >= 2  # one worker launch served the run's models (2 or 3 of them)
    crashed = by_key["burst/hostile_kill_parent.fmu"]
    assert crashed.checks["simulation_succeeded"][0] is False
    assert "FMU_CRASHED" in json.dumps(crashed.outputs["fmu_simulation"]["messages"])
    junk = by_key["burst/not_a_zip.fmu"]
    assert junk.checks["intake_accepted"][0] is False and junk.outputs["fmu_probe"]["status"] == "blocked"
    manifests = sorted((Path(pipeline.store_uri.removeprefix("file://")) / "batches").glob("*.json"))
    assert len(manifests) == 4  # two runs x (probe, simulation); never one launch per model


def test_a_new_version_of_a_known_model_runs_alone(pipeline, burst, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_SENSOR_BATCH_SIZE", "25")
    for fmu in burst[:3]:
        pipeline.drop(fmu, name=f"burst/{fmu.name}", spec=SPEC)
    assert len({o.run_id for o in pipeline.tick()}) == 1
    pipeline.drop(burst[3], name=f"burst/{burst[0].name}", spec=SPEC)  # other bytes under a known name
    pipeline.drop(burst[3], name=f"burst/{burst[3].name}", spec=SPEC)  # and a new model
    second = pipeline.tick()
    assert len({o.run_id for o in second}) == 2
    assert {o.partition_key for o in second} == {f"burst/{burst[0].name}", f"burst/{burst[3].name}"}
    assert all(o.checks["cel_assertions"][0] for o in second)


def test_grouped_and_single_runs_give_each_model_the_same_verdict(pipeline, burst, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("VALIDIBOT_SENSOR_BATCH_SIZE", "25")
    for fmu in burst[:2]:
        pipeline.drop(fmu, name=f"grouped/{fmu.name}", spec=SPEC)
    grouped = {o.partition_key.split("/", 1)[1]: o for o in pipeline.tick()}
    monkeypatch.setenv("VALIDIBOT_SENSOR_BATCH_SIZE", "1")
    for fmu in burst[:2]:
        pipeline.drop(fmu, name=f"single/{fmu.name}", spec=SPEC)
    single = {o.partition_key.split("/", 1)[1]: o for o in pipeline.tick()}
    assert len({o.run_id for o in single.values()}) == 2
    for name, outcome in grouped.items():
        assert outcome.checks == single[name].checks
        assert outcome.outputs["fmu_simulation"]["outputs"]["output_values"] == \
            single[name].outputs["fmu_simulation"]["outputs"]["output_values"]
