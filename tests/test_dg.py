"""The ``dg`` CLI (dagster-dg-cli) on this project: ``[tool.dg]`` in pyproject.toml makes it a dg project whose
code location is ``validibot_pipelines.definitions`` — the same Definitions ``dagster dev -w workspace.yaml``
loads. Real subprocesses of the venv's ``dg`` on a SQLite DAGSTER_HOME in a temp folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from validibot_pipelines.orchestration.models import intake

ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).parent / "dg"
XML_SAMPLES = ROOT / "validibot_pipelines" / "validators" / "xml" / "samples"


@pytest.fixture
def dg_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}}))
    (tmp_path / "landing").mkdir()
    return {**os.environ, "DAGSTER_HOME": str(home), "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
            "VALIDIBOT_STORE_URI": (tmp_path / "store").as_uri(),
            "VALIDIBOT_LANDING_URI": (tmp_path / "landing").as_uri(),
            "VALIDIBOT_ENV": "dev", "COLUMNS": "200", "NO_COLOR": "1"}


def _dg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    assert DG.exists(), f"{DG} missing: install the project (dagster-dg-cli is a dependency)"
    return subprocess.run([str(DG), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_dg_check_defs_and_list_defs_load_the_code_location(dg_env):  # noqa: ANN001
    check = _dg(dg_env, "check", "defs")
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    assert "All definitions loaded successfully" in check.stdout + check.stderr

    listed = _dg(dg_env, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    defs = json.loads(listed.stdout)
    assets = {a["asset_key"] for a in defs["assets"]}
    assert {"fmu_intake", "fmu_probe", "fmu_simulation", "energyplus_simulation", "volume_mesh",
            "xml_schema_validation", "validation_report"} <= assets
    assert {"fmi_validation", "xml_validation"} <= {j["name"] for j in defs["jobs"]}
    assert {"output_sensor"} <= {s["name"] for s in defs["sensors"]}
    assert "fmu_simulation:cel_assertions" in {c["key"] for c in defs["asset_checks"]}


def test_dg_launch_materializes_one_partition(dg_env, tmp_path):  # noqa: ANN001
    """``dg launch --assets … --partition …`` runs in process on the DAGSTER_HOME instance: the XML sample is
    registered as the upload sensor would (intake record + dynamic partition), then one partition launched."""
    landing = tmp_path / "landing"
    for name in ("building.xml", "building.xml.validation.yaml", "building.xsd"):
        shutil.copyfile(XML_SAMPLES / name, landing / name)
    record = intake((landing / "building.xml").as_uri(), store_uri=dg_env["VALIDIBOT_STORE_URI"],
                    spec_uri=(landing / "building.xml.validation.yaml").as_uri(), model_name="building.xml")
    assert record.accepted, record.findings
    home = dg_env["DAGSTER_HOME"]
    with DagsterInstance.from_config(home) as instance:
        instance.add_dynamic_partitions("xml_models", ["building.xml"])

    launched = _dg(dg_env, "launch", "--assets", "xml_file,xml_schema_validation", "--partition", "building.xml")
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    with DagsterInstance.from_config(home) as instance:
        (mat,) = instance.fetch_materializations(AssetRecordsFilter(
            asset_key=AssetKey("xml_schema_validation"), asset_partitions=["building.xml"]), limit=1).records
        assert mat.asset_materialization.metadata["status"].value == "success"
        assert mat.asset_materialization.metadata["sha256"].value == record.sha256


def test_dg_dev_serves_the_code_location(dg_env, tmp_path):  # noqa: ANN001
    """``dg dev`` (webserver + daemon, like ``dagster dev``) finds the project from pyproject.toml alone."""
    from tests.dagster_server import dagster_server, graphql

    with dagster_server(["dg", "dev"], dg_env, tmp_path / "dg-dev.log", start_timeout=180, workspace=None) as port:
        data = graphql(port, "{ assetNodes { assetKey { path } } }")
    keys = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
    assert {"fmu_intake", "fmu_simulation", "xml_schema_validation", "validation_report"} <= keys
