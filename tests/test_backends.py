"""Every backend this project runs here validates the same FMU through Dagster to the same result.

* local: the worker as a subprocess;
* modal: ``ModalBackend`` through its one seam's local stand-in, which runs the deployed function's body
  (``validibot_pipelines.validators.fmi.modal_app.probe_fmu`` / ``run_fmi_simulation`` ``.local()``) in a child
  process and plays the ``fmi-cache-test`` volume with a folder;
* cloudrun: ``CloudRunJobsBackend`` through its one seam's local job runner (real ``run_v2.RunJobRequest``
  objects, the real worker with the ``VALIDIBOT_INPUT_URI`` env contract), completion seen by the GCS output
  sensor on gcp-storage-emulator, results materialized by the runs it requests.

All on a gs:// landing zone and store (gcp-storage-emulator) and real SQLite Dagster instances.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from dagster import AssetKey

from tests.backend_helpers import (
    cloudrun_stand_in,
    drain,
    envelope_of_reference,
    instance_in,
    latest,
    materializations,
    merged_checks,
    merged_outputs,
    modal_stand_in,
    pipeline_on,
)
from tests.outcomes import NO_REFERENCE
from validibot_pipelines.resources.backends.cloudrun_stand_in import LocalJobRunner
from validibot_pipelines.storage import get_store, join_uri

ALL_PASS = {"intake_accepted": (True, "accepted"), "probe_approved": (True, "success"),
            "simulation_succeeded": (True, "success"), "cel_assertions": (True, "2/2 assertions passed"),
                          "matches_reference": (True, NO_REFERENCE)}


@pytest.fixture(autouse=True)
def _every_backend_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare backends on the same store: each must run the worker, not replay another's verdict."""
    monkeypatch.setenv("VALIDIBOT_REPLAY_VERDICTS", "0")


def _validate(tmp_path: Path, root: str, backend, sample_fmus, sample_specs, name: str):  # noqa: ANN001, ANN202
    with instance_in(tmp_path, f"home-{name}") as instance:
        p = pipeline_on(instance, root, backend)
        p.drop(sample_fmus["first_order_lag"], spec=sample_specs / "first_order_lag.validation.yaml")
        outcomes = p.tick()
        outcomes += drain(p)
        (partition,) = p.partitions()
        assert all(o.success for o in outcomes), [(o.run_id, o.checks) for o in outcomes]
        sim = merged_outputs(outcomes, partition)["fmu_simulation"]
        probe_mat = latest(p, "fmu_probe", partition)
        sim_mat = latest(p, "fmu_simulation", partition)
        observations = instance.fetch_observations(AssetKey("fmu_simulation"), limit=100).records
        return {
            "checks": merged_checks(outcomes, partition), "values": sim["outputs"]["output_values"],
            "probe_meta": probe_mat.metadata, "sim_meta": sim_mat.metadata, "runs": len(outcomes),
            "observations": [o.asset_observation.metadata for o in observations], "partition": partition,
            "sha256": merged_outputs(outcomes, partition)["fmu_intake"]["sha256"],
            "sim_materializations": len(materializations(p, "fmu_simulation", partition)),
        }


def test_local_modal_and_cloudrun_give_the_same_result(gcs_bucket, tmp_path, sample_fmus, sample_specs):  # noqa: ANN001
    results = {
        "local": _validate(tmp_path, f"{gcs_bucket}/local", None, sample_fmus, sample_specs, "local"),
        "modal": _validate(tmp_path, f"{gcs_bucket}/modal", modal_stand_in(tmp_path / "volumes"), sample_fmus,
                           sample_specs, "modal"),
        "cloudrun": _validate(tmp_path, f"{gcs_bucket}/cloudrun", cloudrun_stand_in(), sample_fmus, sample_specs,
                              "cloudrun"),
    }
    expected_y = 2.0 * 3.0 * (1 - math.exp(-3.0 / 0.5))
    for name, result in results.items():
        assert result["checks"] == ALL_PASS, name
        assert abs(result["values"]["y"] - expected_y) < 1e-9, name
        assert result["sim_materializations"] == 1, name
    assert results["local"]["values"] == results["modal"]["values"] == results["cloudrun"]["values"]

    # The UI shows which backend ran each step, its launch id and what code ran.
    local, modal, cloudrun = (results[k]["sim_meta"] for k in ("local", "modal", "cloudrun"))
    assert local["backend"].value == "local" and local["launch_id"].value.startswith("pid:")
    assert modal["backend"].value == "modal" and modal["launch_id"].value.startswith("fc-local-")
    assert modal["worker_image"].value == "validibot-fmi/run_fmi_simulation"
    assert "simulated first_order_lag.fmu" in modal["worker_log"].value
    assert cloudrun["backend"].value == "cloudrun"
    assert cloudrun["launch_id"].value.startswith(
        "projects/validibot-test/locations/europe-west1/jobs/validibot-fmi/executions/validibot-fmi-")
    assert cloudrun["launch_status"].value == "SUCCEEDED"
    assert "simulated first_order_lag.fmu" in cloudrun["worker_log"].value
    for meta in (local, modal, cloudrun):
        assert meta["launched_at"].value and meta["launch_finished_at"].value

    # Cloud Run: upload run (intake + probe launched), probe collected + simulation launched, simulation collected.
    assert results["cloudrun"]["runs"] == 3 and results["local"]["runs"] == 1
    launched = results["cloudrun"]["observations"]
    assert len(launched) == 1 and launched[0]["launch_status"].value in {"PENDING", "RUNNING", "SUCCEEDED"}
    assert launched[0]["state"].value.startswith("launched")

    # Modal uploaded the FMU once to the volume stand-in, by checksum.
    cached = list((tmp_path / "volumes" / "fmi-cache-test").iterdir())
    assert [c.name for c in cached] == [f"{results['modal']['sha256']}.fmu"]  # cached by checksum, not by name


def test_cloudrun_launch_sends_a_real_run_job_request_and_records_the_bundle(gcs_bucket, tmp_path, sample_fmus):  # noqa: ANN001
    runner = LocalJobRunner.shared()
    before = len(runner.requests)
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket, cloudrun_stand_in())
        p.drop(sample_fmus["multi_output"])
        (first,) = p.tick()
        request = runner.requests[before]
        assert request.name == "projects/validibot-test/locations/europe-west1/jobs/validibot-fmi"
        env = {e.name: e.value for e in request.overrides.container_overrides[0].env}
        # The job gets a signed URL of the bundle's access grant, not a gs:// URI it would need a role to read.
        assert env["VALIDIBOT_INPUT_URI"].startswith("http") and "X-Goog-Signature" in env["VALIDIBOT_INPUT_URI"]
        input_uri = envelope_of_reference(env["VALIDIBOT_INPUT_URI"])
        assert input_uri.startswith(f"{gcs_bucket}/store/runs/") and input_uri.endswith("/input.json")
        assert request.overrides.timeout.total_seconds() == 3600
        bundle = input_uri.rsplit("/", 1)[0]
        launch = json.loads(get_store(bundle).read_bytes(join_uri(bundle, "launch.json")))
        assert launch["asset"] == "fmu_probe" and launch["partition"] == first.partition_key
        assert "job" not in launch and launch["execution"].startswith(request.name + "/executions/")
        # Nothing is materialized for the probe until the output sensor collects it.
        assert materializations(p, "fmu_probe", first.partition_key) == []
        outcomes = drain(p)
        assert [o.outputs.get("fmu_simulation", {}).get("status") for o in outcomes] == [None, "success"]
        assert outcomes[-1].outputs["fmu_simulation"]["outputs"]["output_values"]["steps"] == 200


@pytest.mark.parametrize("backend", ["modal", "cloudrun"])
def test_energyplus_on_modal_and_cloudrun(gcs_bucket, tmp_path, backend):  # noqa: ANN001
    """The same backends serve any validator: here energyplus_simulation (Cloud Run: collected by the sensor)."""
    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.resources.backends.modal import ModalBackend
    from validibot_pipelines.validators.energyplus.samples import sample_idf

    resource = ModalBackend(app_name="validibot-energyplus", stand_in_volume_dir=str(tmp_path / "volumes")) \
        if backend == "modal" else cloudrun_stand_in("validibot-energyplus")
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket)
        p.defs = build_defs(p.settings, energyplus_backend=resource)
        p.drop(sample_idf("one_zone_box"), spec="weather: Chicago\ntimestep_per_hour: 2\nassertions:\n"
                                                "  - {name: heats, expr: 'o.heating_kwh > 0.0'}\n")
        (first,) = p.tick()
        if backend == "cloudrun":
            assert "energyplus_simulation" not in first.outputs  # launched, not materialized yet
            (collected,) = drain(p)
        else:
            collected = first
        sim = collected.outputs["energyplus_simulation"]
        assert sim["status"] == "success" and sim["outputs"]["metrics"]["heating_kwh"] > 0
        assert collected.checks["simulation_succeeded"] == (True, "success")
        assert collected.checks["cel_assertions"] == (True, "1/1 assertions passed")
        meta = latest(p, "energyplus_simulation", first.partition_key).metadata
        expected = {"modal": "fc-local-",
                    "cloudrun": "projects/validibot-test/locations/europe-west1/jobs/validibot-energyplus/executions/"}
        assert meta["backend"].value == backend and meta["launch_id"].value.startswith(expected[backend])


@pytest.mark.parametrize("backend", ["modal", "cloudrun"])
def test_mesh_on_modal_and_cloudrun(gcs_bucket, tmp_path, cad_parts, backend):  # noqa: ANN001
    """The meshing validator's two worker steps (preview_mesh, volume_mesh) on the Modal stand-in (which finds
    ``validibot_pipelines.validators.mesh.modal_app`` by the app name) and on Cloud Run (each step collected by the
    output sensor)."""
    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.resources.backends.modal import ModalBackend

    resource = ModalBackend(app_name="validibot-mesh", stand_in_volume_dir=str(tmp_path / "volumes")) \
        if backend == "modal" else cloudrun_stand_in("validibot-mesh")
    with instance_in(tmp_path, "home") as instance:
        p = pipeline_on(instance, gcs_bucket)
        p.defs = build_defs(p.settings, mesh_backend=resource)
        p.drop(cad_parts["box"], spec="assertions:\n  - {name: meshed, expr: 'o.total_elements > 10'}\n")
        outcomes = p.tick()
        outcomes += drain(p)
        (partition,) = p.instance.get_dynamic_partitions("cad_parts")
        assert all(o.success for o in outcomes), [(o.run_id, o.checks) for o in outcomes]
        checks = merged_checks(outcomes, partition)
        assert checks["preview_succeeded"][0] and checks["mesh_produced"][0]
        assert checks["cel_assertions"] == (True, "1/1 assertions passed")
        volume = merged_outputs(outcomes, partition)["volume_mesh"]
        assert volume["status"] == "success" and volume["outputs"]["total_elements"] > 10
        for asset in ("preview_mesh", "volume_mesh"):
            meta = latest(p, asset, partition).metadata
            assert meta["backend"].value == backend, (asset, meta["backend"].value)
