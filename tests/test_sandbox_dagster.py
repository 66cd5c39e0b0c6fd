"""Hostile FMUs through the real upload sensor and Dagster runs: the store, the landing zone and DAGSTER_HOME
stay out of reach, secrets stay with the control plane, limits end as the model's fault, and an operator's
opt-out of the sandbox is shown on the asset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile_fmus import build_hostile
from tests.outcomes import errors
from tests.test_sandbox_hostile_cli import SECRETS, left_behind, snapshot


@pytest.fixture
def hostile_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Secrets in the control plane's environment, and worker temp folders under this test's folder."""
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp_path


def test_hostile_models_in_a_sensor_run_touch_nothing_outside_their_sandbox(pipeline, sample_fmus, hostile_env):  # noqa: ANN001
    root = hostile_env  # holds dagster_home/, landing/, store/ of the pipeline fixture
    pipeline.drop(sample_fmus["first_order_lag"])
    [good] = pipeline.tick()
    assert good.success
    before = {name: snapshot(root / name) for name in ("store", "landing", "dagster_home")}
    tamper = build_hostile("tamper", root / "built", target=str(root))
    leak = build_hostile("env_secrets", root / "built")
    pipeline.drop(tamper)
    pipeline.drop(leak)
    outcomes = {Path(o.source_uri).name: o for o in pipeline.tick()}
    assert set(outcomes) == {tamper.name, leak.name}
    for outcome in outcomes.values():
        assert outcome.outputs["fmu_simulation"]["status"] == "success", errors(outcome, "fmu_simulation")
    assert not list(root.rglob("pwned-by-hostile-fmu")) and not list(root.rglob("stolen-*"))
    for name in ("store", "landing"):  # every file that existed is unchanged (new bundles may appear)
        after = snapshot(root / name)
        assert {k: v for k, v in after.items() if k in before[name]} == before[name], name
    log = outcomes[leak.name].outputs["fmu_simulation"]["outputs"]["fmu_log"]
    assert any("leak AWS_SECRET_ACCESS_KEY=(unset)" in line for line in log), log
    stored = "".join(p.read_text(errors="replace") for p in (root / "store").rglob("*.json"))
    assert not any(secret in stored for secret in SECRETS.values())
    assert left_behind(str(root / "tmp")) == []


def test_memory_limit_from_settings_fails_the_model_and_blocks_nothing_else(tmp_path, sample_fmus, hostile_env):  # noqa: ANN001
    from dagster import instance_for_test

    from tests.conftest import Pipeline

    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        pipeline = Pipeline(instance, (tmp_path / "landing").as_uri(), (tmp_path / "store").as_uri(),
                            simulation_timeout_seconds=60, sandbox_memory_bytes=1024**3)
        hog = build_hostile("memory", tmp_path / "built")
        pipeline.drop(hog)
        pipeline.drop(sample_fmus["first_order_lag"])
        outcomes = {Path(o.source_uri).name: o for o in pipeline.tick()}
    sim = outcomes[hog.name].outputs["fmu_simulation"]
    assert sim["status"] == "failed_validation"
    assert "[FMU_MEMORY_LIMIT]" in errors(outcomes[hog.name], "fmu_simulation")
    assert "1 GiB" in errors(outcomes[hog.name], "fmu_simulation")
    assert outcomes[sample_fmus["first_order_lag"].name].outputs["fmu_simulation"]["status"] == "success"


def test_without_bwrap_untrusted_work_is_refused_unless_the_operator_opts_out(pipeline, sample_fmus, monkeypatch):  # noqa: ANN001
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap on PATH (the worker is started by absolute path)
    pipeline.drop(sample_fmus["first_order_lag"])
    [refused] = pipeline.tick()
    probe = refused.outputs["fmu_probe"]  # the probe already runs model code (fmpy's XML check): refused there
    assert probe["status"] == "failed_runtime" and "fmu_simulation" not in refused.outputs
    assert "[SANDBOX_UNAVAILABLE]" in errors(refused, "fmu_probe")
    assert "apt-get install bubblewrap" in errors(refused, "fmu_probe")

    monkeypatch.setenv("VALIDIBOT_ALLOW_UNSANDBOXED", "1")
    from validibot_pipelines.local_runner import run_partition

    allowed = run_partition(pipeline.defs, pipeline.instance, "fmi_validation", refused.partition_key)
    sim = allowed.outputs["fmu_simulation"]
    assert sim["status"] == "success"
    assert "SANDBOX_DISABLED" in json.dumps(sim["messages"])
    from dagster import AssetKey

    event = pipeline.instance.get_latest_materialization_event(AssetKey("fmu_simulation"))
    metadata = event.asset_materialization.metadata
    assert "WITHOUT a sandbox" in metadata["sandbox_warning"].value
