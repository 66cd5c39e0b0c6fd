"""`dagster dev` on workspace.yaml: the UI's GraphQL shows the asset graph, and the real daemon runs the
upload sensor, which launches runs (DefaultRunLauncher subprocesses) that materialize assets and checks."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.dagster_server import dagster_server, graphql


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("dagster-dev")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "VALIDIBOT_HOME": str(root / "validibot"),
           "VALIDIBOT_SENSOR_INTERVAL_SECONDS": "2"}
    with dagster_server(["dagster", "dev"], env, root / "dagster-dev.log") as port:
        yield {"port": port, "home": home, "landing": root / "validibot" / "landing", "log": root / "dagster-dev.log"}


def test_ui_shows_partitioned_asset_graph_with_checks(dagster_dev):  # noqa: ANN001
    data = graphql(dagster_dev["port"], """{ assetNodes { assetKey { path } groupName dependencyKeys { path }
        partitionDefinition { type name } assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }""")
    nodes = {n["assetKey"]["path"][-1]: n for n in data["assetNodes"]}
    # Every step also depends on the spec source (a spec change must reach it: the intake's data version is the
    # model's checksum).
    assert sorted(d["path"][-1] for d in nodes["fmu_probe"]["dependencyKeys"]) == ["fmi_spec", "fmu_intake"]
    assert sorted(d["path"][-1] for d in nodes["fmu_simulation"]["dependencyKeys"]) == [
        "fmi_spec", "fmu_intake", "fmu_probe"]
    assert sorted(d["path"][-1] for d in nodes["energyplus_simulation"]["dependencyKeys"]) == [
        "energyplus_model", "energyplus_spec"]
    expected = {  # asset -> (group, partitions definition, {check: blocking})
        "fmu_intake": ("fmi", "fmu_models", {"intake_accepted": True}),
        "fmu_probe": ("fmi", "fmu_models", {"probe_approved": True}),
        "fmu_simulation": ("fmi", "fmu_models", {"simulation_succeeded": False, "cel_assertions": False,
                                                      "matches_reference": False}),
        "energyplus_model": ("energyplus", "energyplus_models", {"intake_accepted": True}),
        "energyplus_simulation": ("energyplus", "energyplus_models",
                                  {"simulation_succeeded": False, "cel_assertions": False}),
        "cad_file": ("mesh", "cad_parts", {"intake_accepted": True}),
        "preview_mesh": ("mesh", "cad_parts", {"preview_succeeded": True}),
        "volume_mesh": ("mesh", "cad_parts",
                        {"mesh_produced": False, "quality_targets_met": False, "cel_assertions": False}),
    }
    assert sorted(d["path"][-1] for d in nodes["volume_mesh"]["dependencyKeys"]) == [
        "cad_file", "mesh_spec", "preview_mesh"]
    assert expected.keys() <= nodes.keys()
    for name, (group, partitions, checks) in expected.items():
        node = nodes[name]
        assert node["groupName"] == group, name
        assert node["partitionDefinition"] == {"type": "DYNAMIC", "name": partitions}, name
        assert {c["name"]: c["blocking"] for c in node["assetChecksOrError"]["checks"]} == checks, name


def test_daemon_sensor_launches_a_run_that_passes_its_checks(dagster_dev, sample_fmus, sample_specs):  # noqa: ANN001
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    landing = dagster_dev["landing"]
    landing.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_specs / "first_order_lag.validation.yaml", landing / "lag.fmu.validation.yaml")
    shutil.copyfile(sample_fmus["first_order_lag"], landing / "lag.fmu")
    instance = DagsterInstance.from_config(str(dagster_dev["home"]))
    deadline = time.time() + 240
    run = None
    while time.time() < deadline:
        runs = instance.get_runs(RunsFilter(tags={"dagster/sensor_name": "upload_sensor"}), limit=5)
        done = [r for r in runs if r.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)]
        if done:
            run = done[0]
            break
        time.sleep(2)
    assert run is not None, dagster_dev["log"].read_text()[-3000:]
    assert run.status == DagsterRunStatus.SUCCESS
    assert run.tags["dagster/sensor_name"] == "upload_sensor"
    partition = run.tags["dagster/partition"]
    assert instance.has_dynamic_partition("fmu_models", partition)
    data = graphql(dagster_dev["port"], """{ assetNodes { assetKey { path }
        assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization {
        status evaluation { success description } } } } } } }""")
    results = {c["name"]: c["executionForLatestMaterialization"] for n in data["assetNodes"]
               if n["assetKey"]["path"][-1].startswith("fmu_") for c in n["assetChecksOrError"]["checks"]}
    assert results["cel_assertions"]["evaluation"] == {"success": True, "description": "2/2 assertions passed"}
    assert results["probe_approved"]["status"] == "SUCCEEDED"
