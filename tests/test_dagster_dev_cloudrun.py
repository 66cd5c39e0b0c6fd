"""The production shape of the Cloud Run path: `dagster dev` (webserver + daemon, every run in its own process)
with VALIDIBOT_FMI_BACKEND=cloudrun on the local job runner stand-in and a gs:// store on gcp-storage-emulator.

The upload sensor's run launches the probe execution and ends; the daemon's output sensor sees the output
envelope in GCS and requests the collecting runs (run key = callback id) until fmu_simulation is materialized
with its checks. Launcher, sensor and collector are different processes, as in production. The repository's
dagster.yaml (queued runs, pools) is the instance config.
"""

from __future__ import annotations

import os
import shutil
import time

from tests.dagster_server import ROOT, dagster_server, graphql


def test_daemon_runs_a_cloudrun_validation_end_to_end(gcs_bucket, tmp_path, sample_fmus, sample_specs):  # noqa: ANN001
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    landing = tmp_path / "landing"
    landing.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "VALIDIBOT_SENSOR_INTERVAL_SECONDS": "2",
           "VALIDIBOT_LANDING_URI": landing.as_uri(), "VALIDIBOT_STORE_URI": f"{gcs_bucket}/store",
           "VALIDIBOT_FMI_BACKEND": "cloudrun", "VALIDIBOT_CLOUDRUN_STAND_IN": "1",
           "VALIDIBOT_CLOUDRUN_PROJECT": "validibot-test", "VALIDIBOT_CLOUDRUN_STAND_IN_DIR": str(tmp_path / "cr")}
    with dagster_server(["dagster", "dev"], env, tmp_path / "dagster-dev.log") as port:
        shutil.copyfile(sample_specs / "first_order_lag.validation.yaml", landing / "lag.fmu.validation.yaml")
        shutil.copyfile(sample_fmus["first_order_lag"], landing / "lag.fmu")
        instance = DagsterInstance.from_config(str(home))
        deadline = time.time() + 300
        finished: list = []
        while time.time() < deadline:
            finished = [r for r in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.SUCCESS,
                                                                           DagsterRunStatus.FAILURE]))
                        if r.job_name != "validation_report_job"]  # report_sensor's refreshes are not validations
            if len(finished) >= 3 or any(r.status == DagsterRunStatus.FAILURE for r in finished):
                break
            time.sleep(2)
        log_tail = (tmp_path / "dagster-dev.log").read_text()[-4000:]
        assert [r.status for r in finished] == [DagsterRunStatus.SUCCESS] * 3, log_tail
        sensors = sorted(r.tags.get("dagster/sensor_name") for r in finished)
        assert sensors == ["output_sensor", "output_sensor", "upload_sensor"]
        assert len({r.tags["dagster/run_key"] for r in finished}) == 3
        data = graphql(port, """{ assetNodes { assetKey { path } assetMaterializations(limit: 1) {
            metadataEntries { label ... on TextMetadataEntry { text } } }
            assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization {
            status evaluation { success description } } } } } } }""")
        nodes = {n["assetKey"]["path"][-1]: n for n in data["assetNodes"]}
        checks = {c["name"]: c["executionForLatestMaterialization"]
                  for c in nodes["fmu_simulation"]["assetChecksOrError"]["checks"]}
        assert checks["cel_assertions"]["evaluation"] == {"success": True, "description": "2/2 assertions passed"}
        meta = {e["label"]: e.get("text") for e in nodes["fmu_simulation"]["assetMaterializations"][0]
                ["metadataEntries"]}
        assert meta["backend"] == "cloudrun" and meta["launch_status"] == "SUCCEEDED"
        assert meta["launch_id"].startswith("projects/validibot-test/locations/us-central1/jobs/validibot-fmi/")
