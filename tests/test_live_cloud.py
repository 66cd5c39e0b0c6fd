"""Live smoke tests against the real clouds: Modal (``RUN_MODAL_TESTS=1``) and Cloud Run Jobs
(``RUN_CLOUDRUN_TESTS=1``). Opt-in and skipped everywhere else — there is no Modal or Cloud Run emulator, and
CI has no account. They go through the production side of each seam (``SdkModalClient``,
``GoogleCloudRunApi``), never a stand-in, so they fail when the real services or SDKs change under us.

Modal (deploys the FMI app into a Modal *environment* kept for tests, caches FMUs on the ``-test`` volume):
    RUN_MODAL_TESTS=1 MODAL_TOKEN_ID=… MODAL_TOKEN_SECRET=… VALIDIBOT_LIVE_STORE_URI=gs://bucket/prefix \
      [VALIDIBOT_MODAL_TEST_ENVIRONMENT=validibot-test] \
      .venv/bin/python -m pytest -q tests/test_live_cloud.py -p no:xdist -k modal
  The store must be a gs:// or s3:// prefix the test machine can write and sign URLs for (ambient
  credentials); the Modal function has no secret attached and reaches the store only through the signed URLs
  of its launch (docs/security.md).

Cloud Run (one real execution of an already deployed job running the FMI worker image):
    RUN_CLOUDRUN_TESTS=1 GOOGLE_APPLICATION_CREDENTIALS=/path/key.json VALIDIBOT_CLOUDRUN_PROJECT=… \
      VALIDIBOT_CLOUDRUN_REGION=… VALIDIBOT_CLOUDRUN_JOB=validibot-fmi VALIDIBOT_LIVE_STORE_URI=gs://bucket/prefix \
      .venv/bin/python -m pytest -q tests/test_live_cloud.py -p no:xdist -k cloudrun
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from validibot_pipelines.envelopes import Status
from validibot_pipelines.orchestration.models import ModelRecord, intake
from validibot_pipelines.storage import get_store, join_uri

ROOT = Path(__file__).resolve().parents[1]
MODAL_VARS = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "VALIDIBOT_LIVE_STORE_URI")
CLOUDRUN_VARS = ("GOOGLE_APPLICATION_CREDENTIALS", "VALIDIBOT_CLOUDRUN_PROJECT", "VALIDIBOT_CLOUDRUN_REGION",
                 "VALIDIBOT_CLOUDRUN_JOB", "VALIDIBOT_LIVE_STORE_URI")
DEPLOY_TIMEOUT_S = 1800  # the first deploy builds the worker image
RUN_TIMEOUT_S = 900


def _skip_unless(flag: str, needed: tuple[str, ...]) -> None:
    """Skip with a reason naming exactly what to set (the flag first, then each missing variable)."""
    missing = [name for name in needed if not os.environ.get(name)]
    if os.environ.get(flag) != "1":
        pytest.skip(f"live cloud test: set {flag}=1 and {', '.join(needed)} to run it")
    if missing:
        pytest.skip(f"{flag}=1 but {', '.join(missing)} not set; set them (see tests/test_live_cloud.py)")
    store = os.environ["VALIDIBOT_LIVE_STORE_URI"]
    if not store.startswith(("gs://", "s3://")):
        pytest.skip(f"VALIDIBOT_LIVE_STORE_URI={store!r}: the cloud worker needs a gs:// or s3:// prefix")


def _live_record(sample: Path, run: str) -> tuple[str, ModelRecord]:
    """The sample FMU uploaded into a fresh prefix of the live store and accepted by intake."""
    root = join_uri(os.environ["VALIDIBOT_LIVE_STORE_URI"], f"live-tests/{run}")
    uri = join_uri(root, "landing", sample.name)
    get_store(uri).upload_file(sample, uri)
    record = intake(uri, store_uri=join_uri(root, "store"))
    assert record.accepted, record.findings
    return join_uri(root, "store"), record


def test_modal_deploys_the_fmi_app_and_validates_a_sample_fmu(sample_fmus):  # noqa: ANN001
    _skip_unless("RUN_MODAL_TESTS", MODAL_VARS)
    import modal

    from validibot_pipelines.resources.backends.modal import ModalBackend
    from validibot_pipelines.validators.fmi import launch as fmi
    from validibot_pipelines.validators.fmi.modal_app import APP_NAME

    environment = os.environ.get("VALIDIBOT_MODAL_TEST_ENVIRONMENT", "validibot-test")
    env = {**os.environ, "MODAL_ENVIRONMENT": environment, "FMI_USE_TEST_VOLUME": "1"}
    modal_cli = [sys.executable, "-m", "modal"]
    # The environment may exist already (then `create` fails, harmlessly); deploy is what must succeed.
    subprocess.run([*modal_cli, "environment", "create", environment], env=env, capture_output=True, timeout=120)
    deploy = subprocess.run([*modal_cli, "deploy", "-m", "validibot_pipelines.validators.fmi.modal_app",
                             "--env", environment], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=DEPLOY_TIMEOUT_S)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

    os.environ["MODAL_ENVIRONMENT"] = environment  # the SDK looks the app and volume up in that environment
    try:
        store, record = _live_record(sample_fmus["first_order_lag"], uuid.uuid4().hex[:12])
        backend = ModalBackend(app_name=APP_NAME, cache_volume="fmi-cache-test")
        out = fmi.validate_in_process(record, store_uri=store, backend=backend, attempt="live-modal")
        assert out.status == Status.SUCCESS, [m.text for m in out.messages]
        assert out.outputs["output_values"], out.outputs  # the simulation really ran on Modal
        # The FMU was cached on the test volume by checksum, where the function read it.
        listing = modal.Volume.from_name("fmi-cache-test", environment_name=environment).listdir("/")
        assert f"{record.sha256}.fmu" in {Path(entry.path).name for entry in listing}
    finally:
        os.environ.pop("MODAL_ENVIRONMENT", None)


def test_cloudrun_runs_one_real_job_execution(sample_fmus):  # noqa: ANN001
    _skip_unless("RUN_CLOUDRUN_TESTS", CLOUDRUN_VARS)
    from validibot_pipelines.envelopes import load_output_envelope
    from validibot_pipelines.orchestration.launch import collect_step
    from validibot_pipelines.orchestration.layout import launch_marker_uri
    from validibot_pipelines.resources.backends.cloudrun import CloudRunJobsBackend, launch_status, read_launch
    from validibot_pipelines.resources.backends.cloudrun_api import TERMINAL
    from validibot_pipelines.validators.fmi import launch as fmi

    store, record = _live_record(sample_fmus["first_order_lag"], uuid.uuid4().hex[:12])
    backend = CloudRunJobsBackend(project=os.environ["VALIDIBOT_CLOUDRUN_PROJECT"],
                                  region=os.environ["VALIDIBOT_CLOUDRUN_REGION"],
                                  job=os.environ["VALIDIBOT_CLOUDRUN_JOB"])
    pending, launch = fmi.probe(record, store_uri=store, backend=backend, attempt="live-cloudrun")
    assert pending is None and launch.pending and not launch.error, launch
    assert launch.launch_id.startswith(backend.job_name + "/executions/"), launch.launch_id

    input_uri = next(o.uri for o in get_store(store).list(join_uri(store, "runs")) if o.uri.endswith("/input.json"))
    execution_bundle = input_uri.rsplit("/", 1)[0]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = ""
    while time.monotonic() < deadline:  # what the output sensor does: ask the real API until it is over
        status = launch_status(read_launch(execution_bundle))[0]
        if status in TERMINAL:
            break
        time.sleep(10)
    assert status == "SUCCEEDED", f"execution {launch.launch_id} ended {status or 'not in time'}"
    out, collected = collect_step(input_uri)
    assert out.status == Status.SUCCESS, [m.text for m in out.messages]
    assert collected.status == "SUCCEEDED" and out.outputs["counts"]["outputs"] == 1
    written = join_uri(execution_bundle, "output.json")
    assert load_output_envelope(get_store(written).read_bytes(written), where=written).run_id == out.run_id
    marker = launch_marker_uri(execution_bundle)  # collected: retire the marker, as the output sensor does
    assert get_store(marker).exists(marker)
    get_store(marker).delete(marker)
