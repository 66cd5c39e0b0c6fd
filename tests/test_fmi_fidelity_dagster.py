"""FMUs beyond FMI 2 Co-Simulation through the real upload sensor and Dagster runs: Model Exchange, FMI 3
arrays and 64-bit integers, a reference result — values equal a direct fmpy run, and the UI says how it ran."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey, AssetRecordsFilter

from tests.fmi_cases_build import build_case
from tests.test_fmi_fidelity import _reference_csv, direct


def _metadata(pipeline, asset: str, partition: str) -> dict:  # noqa: ANN001
    records = pipeline.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition]), limit=1).records
    assert records, f"{asset} was not materialized for {partition}"
    return records[0].asset_materialization.metadata


def test_model_exchange_arrays_and_a_reference_through_the_sensor(pipeline, tmp_path: Path) -> None:  # noqa: ANN001
    built = tmp_path / "built"
    me = build_case("me_only_fmi2", built)
    arrays = build_case("cs_fmi3_arrays", built)
    both = build_case("cs_and_me_fmi2", built)
    reference = _reference_csv(tmp_path / "both_ref.csv", direct(both, fmi_type="ModelExchange"))
    pipeline.drop(me)
    pipeline.drop(arrays, spec="assertions:\n  - {name: third, expr: 'o.y[2] == 3.0 && size(o.m) == 2'}\n")
    pipeline.drop(reference)
    pipeline.drop(both, spec="simulation: {interface: model_exchange}\nreference: both_ref.csv\n")
    outcomes = {Path(o.source_uri).name: o for o in pipeline.tick()}
    assert set(outcomes) == {me.name, arrays.name, both.name}
    for outcome in outcomes.values():
        assert outcome.success and all(passed for passed, _ in outcome.checks.values()), outcome.checks

    sim = outcomes[me.name].outputs["fmu_simulation"]["outputs"]
    assert sim["interface"] == "model_exchange" and sim["solver"] == "cvode"
    meta = _metadata(pipeline, "fmu_simulation", outcomes[me.name].partition_key)
    assert meta["interface"].value == "model_exchange (cvode)"
    probe_meta = _metadata(pipeline, "fmu_probe", outcomes[me.name].partition_key)
    assert probe_meta["interfaces"].value == "model_exchange"

    values = outcomes[arrays.name].outputs["fmu_simulation"]["outputs"]["output_values"]
    assert values["y"] == direct(arrays)["y"][-1].tolist()
    catalog = {r.data["name"]: r.data["dimensions"] for r in
               _metadata(pipeline, "fmu_probe", outcomes[arrays.name].partition_key)["variables"].records}
    assert catalog["m"] == "[2, 2]"

    checks = outcomes[both.name].checks
    assert checks["matches_reference"][0] and "both_ref.csv" in checks["matches_reference"][1]
    assert outcomes[both.name].outputs["fmu_simulation"]["outputs"]["interface"] == "model_exchange"
