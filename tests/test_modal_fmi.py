"""The Modal FMI app and ``ModalBackend``, without the Modal cloud (unreachable here).

* The function bodies run for real with ``.local()``: they take the FMU from the cache volume folder
  (``/<sha256>.fmu``), not from the store, and still verify its checksum.
* The backend's client path runs through its one seam's stand-in; Modal failures are raised as the real
  ``modal.exception`` classes and must come out as ``failed_runtime`` with a message saying what to do.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from modal.exception import AuthError, FunctionTimeoutError, NotFoundError

from tests.backend_helpers import modal_stand_in
from validibot_pipelines.orchestration.models import ModelRecord, intake
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.modal import ModalBackend
from validibot_pipelines.resources.backends.modal_client import LocalModalStandIn
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.validators.fmi import launch as fmi


def _record(root: str, fmu: Path) -> ModelRecord:
    uri = join_uri(root, "landing", fmu.name)
    get_store(uri).upload_file(fmu, uri)
    record = intake(uri, store_uri=join_uri(root, "store"))
    assert record.accepted, record.findings
    return record


class _InProcessModal:
    """Calls a Modal function's body with ``.local()`` in this process (as Modal's container would)."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.results: list[dict[str, Any]] = []

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        self.results.append(self.function.local(input_uri))
        return LaunchRecord(backend="modal-local", launch_id=run_id, returncode=0, timed_out=False, seconds=0.0)


def test_function_bodies_read_the_fmu_from_the_cache_volume(gcs_bucket, sample_fmus, tmp_path, monkeypatch):  # noqa: ANN001
    from validibot_pipelines.validators.fmi.modal_app import probe_fmu, run_fmi_simulation

    record = _record(gcs_bucket, sample_fmus["first_order_lag"])
    volume = tmp_path / "fmi-cache-test"
    volume.mkdir()
    shutil.copyfile(sample_fmus["first_order_lag"], volume / f"{record.sha256}.fmu")
    monkeypatch.setenv("VALIDIBOT_FMU_CACHE_DIR", str(volume))
    get_store(record.canonical_uri).delete(record.canonical_uri)  # only the volume has the FMU now

    probe = _InProcessModal(probe_fmu)
    out, _ = fmi.probe(record, store_uri=f"{gcs_bucket}/store", backend=probe, attempt="modal-local")
    assert out.status.value == "success", out.messages
    assert probe.results[0]["outputs"]["counts"]["outputs"] == 1  # the function's own return value
    sim = _InProcessModal(run_fmi_simulation)
    out, _ = fmi.simulate(record, store_uri=f"{gcs_bucket}/store", backend=sim, attempt="modal-local")
    assert out.status.value == "success", out.messages
    assert abs(out.outputs["output_values"]["y"] - 2.0 * (1 - 2.718281828459045 ** -6)) < 1e-6

    # A corrupted cache entry is caught by the worker's checksum verification, not simulated (replay off: the
    # same inputs would otherwise replay the verdict above without reading the volume at all).
    monkeypatch.setenv("VALIDIBOT_REPLAY_VERDICTS", "0")
    (volume / f"{record.sha256}.fmu").write_bytes(b"not the fmu")
    out, _ = fmi.probe(record, store_uri=f"{gcs_bucket}/store", backend=_InProcessModal(probe_fmu), attempt="bad")
    assert out.status.value == "failed_runtime" and "checksum mismatch" in out.messages[0].text


def test_backend_uploads_by_checksum_once_and_records_the_call(local_root, sample_fmus, tmp_path,  # noqa: ANN001
                                                               monkeypatch):
    monkeypatch.setenv("VALIDIBOT_REPLAY_VERDICTS", "0")  # the second launch must reach the backend
    record = _record(local_root, sample_fmus["multi_output"])
    backend = modal_stand_in(tmp_path / "volumes")
    out1, first = fmi.probe(record, store_uri=f"{local_root}/store", backend=backend, attempt="a")
    out2, second = fmi.probe(record, store_uri=f"{local_root}/store", backend=backend, attempt="b")
    assert out1.status.value == out2.status.value == "success"
    assert first.details["volume_uploads"] == f"fmi-cache-test:/{record.sha256}.fmu"
    assert second.details["volume_uploads"] == "none (already cached)"
    assert first.launch_id.startswith("fc-local-") and first.launch_id != second.launch_id
    assert first.image == "validibot-fmi/probe_fmu" and first.details["worker_version"]


class _FaultyModal(ModalBackend):
    """The stand-in told to raise a real Modal exception from one operation."""

    fail_op: str = "spawn"
    fail_kind: str = "auth"

    def client(self) -> LocalModalStandIn:
        exc = {"auth": AuthError("Token ID is malformed"), "function_timeout": FunctionTimeoutError("timed out"),
               "not_found": NotFoundError("Volume 'fmi-cache' not found")}[self.fail_kind]
        return LocalModalStandIn(Path(self.stand_in_volume_dir), cache_volume=self.cache_volume,
                                 fail={self.fail_op: exc})


@pytest.mark.parametrize(("op", "kind", "advice"), [
    ("spawn", "auth", "modal token new"),
    ("volume_has", "auth", "modal token new"),
    ("get", "function_timeout", "exceeded its own timeout"),
    ("volume_upload", "not_found", "modal deploy -m validibot_pipelines.validators.fmi.modal_app"),
])
def test_modal_errors_become_failed_runtime_with_advice(local_root, sample_fmus, tmp_path, op, kind, advice):  # noqa: ANN001
    record = _record(local_root, sample_fmus["first_order_lag"])
    backend = _FaultyModal(app_name="validibot-fmi", cache_volume="fmi-cache-test",
                           stand_in_volume_dir=str(tmp_path / "v"), fail_op=op, fail_kind=kind)
    out, launch = fmi.probe(record, store_uri=f"{local_root}/store", backend=backend, attempt="x")
    assert out.status.value == "failed_runtime"
    assert out.messages[0].code == "BACKEND_ERROR" and advice in out.messages[0].text
    assert advice in launch.error


def test_app_not_deployed(local_root, sample_fmus, tmp_path):  # noqa: ANN001
    record = _record(local_root, sample_fmus["first_order_lag"])
    backend = ModalBackend(app_name="validibot-fmi-staging", stand_in_volume_dir=str(tmp_path / "v"))
    out, _ = fmi.probe(record, store_uri=f"{local_root}/store", backend=backend, attempt="x")
    assert out.status.value == "failed_runtime"
    assert "validibot-fmi-staging/probe_fmu is not deployed" in out.messages[0].text


def test_call_that_outlives_the_timeout_is_cancelled(local_root, sample_fmus, tmp_path):  # noqa: ANN001
    record = _record(local_root, sample_fmus["hang"])
    backend = modal_stand_in(tmp_path / "v", grace_seconds=0.0)
    out, launch = fmi.simulate(record, store_uri=f"{local_root}/store", backend=backend, attempt="x",
                               simulation_timeout_seconds=60, timeout_seconds=2)
    assert launch.timed_out and "was cancelled" in launch.error
    assert out.status.value == "failed_runtime" and "raise worker_timeout_seconds" in out.messages[0].text


def test_real_client_refuses_file_uris_without_calling_modal(local_root, sample_fmus):  # noqa: ANN001
    record = _record(local_root, sample_fmus["first_order_lag"])
    backend = ModalBackend(app_name="validibot-fmi")
    out, launch = fmi.probe(record, store_uri=f"{local_root}/store", backend=backend, attempt="x")
    assert launch.launch_id == "" and "set VALIDIBOT_STORE_URI to a gs:// or s3://" in launch.error
    assert out.status.value == "failed_runtime"


def test_real_modal_sdk_without_a_token_is_a_clear_failed_runtime(gcs_bucket, sample_fmus, tmp_path, monkeypatch):  # noqa: ANN001
    """The production side of the seam (``SdkModalClient``, the real Modal SDK) on a machine with no Modal
    token: the SDK refuses before any network call, and the step ends failed_runtime naming ``modal token new``."""
    for var in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-modal.toml"))
    monkeypatch.setenv("HOME", str(tmp_path))
    record = _record(gcs_bucket, sample_fmus["first_order_lag"])
    backend = ModalBackend(app_name="validibot-fmi", cache_volume="fmi-cache-test")
    out, launch = fmi.probe(record, store_uri=f"{gcs_bucket}/store", backend=backend, attempt="x")
    assert out.status.value == "failed_runtime" and out.messages[0].code == "BACKEND_ERROR"
    assert "modal token new" in out.messages[0].text, out.messages[0].text
