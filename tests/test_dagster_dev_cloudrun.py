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
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.test_dagster_dev import _free_port, _graphql

ROOT = Path(__file__).resolve().parents[1]


def test_daemon_runs_a_cloudrun_validation_end_to_end(gcs_bucket, tmp_path, sample_fmus, sample_specs):  # noqa: ANN001
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    landing = tmp_path / "landing"
    landing.mkdir()
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "VALIDIBOT_SENSOR_INTERVAL_SECONDS": "2",
           "VALIDIBOT_LANDING_URI": landing.as_uri(), "VALIDIBOT_STORE_URI": f"{gcs_bucket}/store",
           "VALIDIBOT_FMI_BACKEND": "cloudrun", "VALIDIBOT_CLOUDRUN_STAND_IN": "1",
           "VALIDIBOT_CLOUDRUN_PROJECT": "validibot-test", "VALIDIBOT_CLOUDRUN_STAND_IN_DIR": str(tmp_path / "cr")}
    log_path = tmp_path / "dagster-dev.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("dagster")), "dev", "-w", "workspace.yaml",
                                 "-h", "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                    break
                except OSError:
                    assert proc.poll() is None, log_path.read_text()[-3000:]
                    time.sleep(1)
            shutil.copyfile(sample_specs / "first_order_lag.validation.yaml", landing / "lag.fmu.validation.yaml")
            shutil.copyfile(sample_fmus["first_order_lag"], landing / "lag.fmu")
            instance = DagsterInstance.from_config(str(home))
            deadline = time.time() + 300
            finished: list = []
            while time.time() < deadline:
                finished = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]))
                if len(finished) >= 3 or any(r.status == DagsterRunStatus.FAILURE for r in finished):
                    break
                time.sleep(2)
            assert [r.status for r in finished] == [DagsterRunStatus.SUCCESS] * 3, log_path.read_text()[-4000:]
            sensors = sorted(r.tags.get("dagster/sensor_name") for r in finished)
            assert sensors == ["output_sensor", "output_sensor", "upload_sensor"]
            assert len({r.tags["dagster/run_key"] for r in finished}) == 3
            data = _graphql(port, """{ assetNodes { assetKey { path } assetMaterializations(limit: 1) {
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
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
