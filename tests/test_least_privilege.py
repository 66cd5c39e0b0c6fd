"""Least privilege in the cloud: a worker reaches only its own execution, through the URLs signed for it.

Stores that check what the real clouds check (``tests/enforced_stores.py``): S3 is moto with IAM enforcement
behind a gateway that verifies presigned URLs with botocore's SigV4 code; GCS is gcp-storage-emulator behind the
same gateway verifying V4 signatures (made with a service-account key generated in the test) with
google-cloud-storage's own signing code. The workers are the real ones, on the Modal and Cloud Run stand-ins
(which hand the worker no credential, as the real function and job hold none) and a bare subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.backend_helpers import cloudrun_stand_in, wait_for_executions
from tests.enforced_stores import enforced_s3, gcs_gateway
from tests.hostile_fmus import build_hostile
from validibot_pipelines.envelopes import Status, load_input_envelope, load_output_envelope
from validibot_pipelines.orchestration import access
from validibot_pipelines.orchestration.launch import collect_step, launch_step, model_run_id, read_output
from validibot_pipelines.orchestration.models import intake
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.modal import ModalBackend
from validibot_pipelines.storage import get_store
from validibot_pipelines.storage.grant import AccessGrant
from validibot_pipelines.validators.fmi import launch as fmi


@pytest.fixture(params=["gs", "s3"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: ANN201
    """A bucket whose every signed request is verified: ``{"bucket", "gateway" or log, "signer", "kind"}``."""
    if request.param == "gs":
        emulator = request.getfixturevalue("gcs_endpoint")
        bucket = request.getfixturevalue("gcs_bucket")
        with gcs_gateway(monkeypatch, emulator) as gateway:
            yield {"kind": "gs", "bucket": bucket, "log": gateway["log"], "signer": gateway["signer"]}
    else:
        request.getfixturevalue("s3_endpoint")  # session env for boto3; overridden below for this test
        with enforced_s3(monkeypatch) as s3:
            yield {"kind": "s3", "bucket": s3["bucket"], "log": s3["gateway"]["log"], "signer": s3["signer"],
                   "moto": s3["moto"], "name": s3["name"]}


def _modal(tmp_path: Path) -> ModalBackend:
    """The Modal stand-in without a cache volume: the worker downloads every input through its grant."""
    return ModalBackend(app_name="validibot-fmi", stand_in_volume_dir=str(tmp_path / "volumes"))


def _http(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the test's own store
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _retarget(url: str, victim_path: str) -> str:
    """The same signed URL pointed at another object: what a worker holding only its own URLs can try."""
    parts = urlsplit(url)
    return parts._replace(path=victim_path).geturl()


def test_a_worker_on_signed_urls_validates_and_the_grant_is_scoped(store, sample_fmus, tmp_path) -> None:  # noqa: ANN001
    record = intake(sample_fmus["first_order_lag"].resolve().as_uri(), store_uri=store["bucket"])
    assert record.accepted, record.findings
    out, launch = fmi.simulate(record, store_uri=store["bucket"], backend=_modal(tmp_path), attempt="lp",
                               simulation_timeout_seconds=60)
    assert out.status == Status.SUCCESS, out.messages
    assert launch.details["signed_by"] == store["signer"]  # who signed: in the asset metadata via the record
    # Every request the worker made went through the verifying gateway and was accepted (404: replay probe).
    assert store["log"] and {status for _, _, status in store["log"]} <= {200, 404}, store["log"]
    assert any(method == "PUT" and path.endswith("/output.json") for method, path, _ in store["log"])
    artifact = out.artifacts[0]
    assert artifact.name == "timeseries.parquet" and "/artifacts/" in artifact.uri
    assert get_store(artifact.uri).sha256_and_size(artifact.uri)[0] == artifact.sha256

    expires = "X-Goog-Expires" if store["kind"] == "gs" else "X-Amz-Expires"
    envelope_uri = f"{store['bucket']}/runs/{out.run_id}/input.json"
    envelope = load_input_envelope(get_store(envelope_uri).read_bytes(envelope_uri))
    grant = access.read_grant(envelope)
    assert grant is not None
    assert grant.ttl_seconds >= envelope.context.timeout_seconds  # lives as long as the launch may
    assert set(grant.write) == {envelope.context.expected_output_uri}  # the only object it may overwrite
    signed = [*grant.read.items(), *grant.write.items(), *((s.uri, s.put) for s in grant.artifacts)]
    for canonical, url in signed:  # each URL names exactly its object, and expires with the grant
        bucket_and_key = canonical.split("://", 1)[1]
        assert urlsplit(url).path == "/" + bucket_and_key
        assert dict(parse_qsl(urlsplit(url).query))[expires] == str(grant.ttl_seconds)
    bundle = envelope.context.execution_bundle_uri
    assert all(s.uri.startswith(bundle + "/artifacts/") for s in grant.artifacts)
    assert len(grant.artifacts) == 8  # the FMI validator's artifact slots (meshing signs 300)
    assert set(grant.read) == {envelope_uri, envelope.context.expected_output_uri,
                               *(item.uri for item in envelope.input_files)}


class _Captured(Exception):
    pass


def _attacker_grant(store_uri: str, record, run_id: str) -> tuple[str, AccessGrant]:  # noqa: ANN001
    """A real launch's grant for a second model, as its worker would receive it (nothing runs)."""
    seen: dict[str, str] = {}

    class Capture:
        def launch(self, input_uri, *, run_id, timeout_seconds, context=None):  # noqa: ANN001, ANN202
            seen["reference"] = access.worker_reference(input_uri, timeout_seconds)
            raise _Captured

    with pytest.raises(_Captured):
        launch_step(store_uri=store_uri, run_id=run_id, validator=fmi.PROBE_VALIDATOR,
                    files=[record.input_file("fmu")], inputs={"kind": "fmi_probe"}, backend=Capture(),
                    timeout_seconds=60)
    with urllib.request.urlopen(seen["reference"], timeout=30) as response:  # noqa: S310
        return seen["reference"], AccessGrant.model_validate_json(response.read())


def test_a_hostile_worker_with_its_urls_cannot_touch_another_model(store, sample_fmus, tmp_path) -> None:  # noqa: ANN001
    victim = intake(sample_fmus["first_order_lag"].resolve().as_uri(), store_uri=store["bucket"])
    out, _ = fmi.simulate(victim, store_uri=store["bucket"], backend=_modal(tmp_path), attempt="victim",
                          simulation_timeout_seconds=60)
    assert out.status == Status.SUCCESS, out.messages
    victim_output = f"{store['bucket']}/runs/{out.run_id}/output.json"
    victim_bytes = get_store(victim_output).read_bytes(victim_output)
    victim_path = "/" + victim_output.split("://", 1)[1]
    victim_model = "/" + victim.input_file("fmu").uri.split("://", 1)[1]

    attacker = intake(sample_fmus["multi_output"].resolve().as_uri(), store_uri=store["bucket"])
    _, grant = _attacker_grant(store["bucket"], attacker, "attacker-run")
    own_output = next(iter(grant.write))
    forged = b'{"status": "success", "forged": true}'
    attempts = {
        "read the victim's verdict": _http("GET", _retarget(grant.read[own_output], victim_path)),
        "read the victim's model": _http("GET", _retarget(grant.read[own_output], victim_model)),
        "overwrite the victim's verdict": _http("PUT", _retarget(grant.write[own_output], victim_path), forged),
        "overwrite it through an artifact slot": _http("PUT", _retarget(grant.artifacts[0].put, victim_path), forged),
        "write with a read URL": _http("PUT", _retarget(grant.read[own_output], victim_path), forged),
        "use its own read URL to write": _http("PUT", grant.read[own_output], forged),
        "write unsigned": _http("PUT", urlsplit(grant.read[own_output])._replace(query="", path=victim_path).geturl(),
                                forged),
    }
    if store["kind"] == "s3":  # straight to the store behind the gateway, without credentials
        attempts["write to moto directly"] = _http("PUT", store["moto"] + victim_path, forged)
    assert all(status in (400, 401, 403) for status in attempts.values()), attempts
    assert get_store(victim_output).read_bytes(victim_output) == victim_bytes  # the victim's result is unchanged
    assert _http("PUT", grant.write[own_output], b"{}") == 200  # what it may do, it can

    # What it can write — its own output — cannot claim another bundle's objects as its artifacts.
    envelope_uri = grant.envelope_uri
    envelope = load_input_envelope(get_store(envelope_uri).read_bytes(envelope_uri))
    claim = load_output_envelope(victim_bytes).model_copy(update={
        "run_id": envelope.run_id,
        "input_envelope_sha256": hashlib.sha256(get_store(envelope_uri).read_bytes(envelope_uri)).hexdigest()})
    assert _http("PUT", grant.write[own_output], claim.model_dump_json().encode()) == 200
    record = LaunchRecord(backend="test", launch_id="attacker", returncode=0, timed_out=False, seconds=0.0)
    result = read_output(envelope, record)
    assert result.status == Status.FAILED_RUNTIME
    assert result.messages[0].code == "WORKER_OUTPUT_REJECTED"
    assert "outside this launch's bundle" in result.messages[0].text


def test_expired_urls_end_as_a_runtime_failure_naming_the_expiry(store, sample_fmus, monkeypatch) -> None:  # noqa: ANN001
    """A grant that expires before the worker starts: the worker is refused, the control plane says why."""
    record = intake(sample_fmus["first_order_lag"].resolve().as_uri(), store_uri=store["bucket"])
    monkeypatch.setenv(access.ENV_GRACE, "-59")  # 60 s timeout - 59 s: the URLs live one second

    class LateWorker:
        """The real worker, started after its grant expired, with no credential in its environment."""

        def launch(self, input_uri, *, run_id, timeout_seconds, context=None):  # noqa: ANN001, ANN202
            reference = access.worker_reference(input_uri, timeout_seconds)
            time.sleep(2.5)
            env = {**access.without_credentials(dict(os.environ)), "VALIDIBOT_INPUT_URI": reference}
            done = subprocess.run([sys.executable, "-m", "validibot_pipelines.runtime"], env=env, timeout=120,
                                  capture_output=True, text=True)
            return LaunchRecord(backend="late", launch_id="late-1", returncode=done.returncode, timed_out=False,
                                seconds=2.5, log_tail=done.stderr[-4000:])

    out, launch = launch_step(store_uri=store["bucket"], run_id="expired-run", validator=fmi.PROBE_VALIDATOR,
                              files=[record.input_file("fmu")], inputs={"kind": "fmi_probe"}, backend=LateWorker(),
                              timeout_seconds=60)
    assert launch.returncode == 3, launch.log_tail  # the worker could not honour the contract
    assert "signed URL expired" in launch.log_tail  # and said why in its own log
    assert out.status == Status.FAILED_RUNTIME
    message = out.messages[0]
    assert message.code == "ACCESS_EXPIRED"
    assert "expired at" in message.text and "re-run the step" in message.text and access.ENV_GRACE in message.text


def test_a_red_team_fmu_on_the_stand_ins_cannot_alter_another_verdict(store, sample_fmus, tmp_path,  # noqa: ANN001
                                                                       monkeypatch) -> None:
    victim = intake(sample_fmus["first_order_lag"].resolve().as_uri(), store_uri=store["bucket"])
    out, _ = fmi.simulate(victim, store_uri=store["bucket"], backend=_modal(tmp_path), attempt="victim",
                          simulation_timeout_seconds=60)
    victim_output = f"{store['bucket']}/runs/{out.run_id}/output.json"
    before = get_store(victim_output).read_bytes(victim_output)
    gateway = urlsplit(os.environ["VALIDIBOT_SIGNED_URL_ENDPOINT"]).netloc
    target = f"{gateway}/{victim_output.split('://', 1)[1]}"
    hostile = intake(build_hostile("store", tmp_path / "fmus", target=target).resolve().as_uri(),
                     store_uri=store["bucket"])
    assert hostile.accepted, hostile.findings

    on_modal, launch = fmi.simulate(hostile, store_uri=store["bucket"], backend=_modal(tmp_path),
                                    attempt="red-modal", simulation_timeout_seconds=60)
    assert on_modal.status == Status.SUCCESS, on_modal.messages
    assert launch.details["signed_by"] == store["signer"]
    log = "\n".join(on_modal.outputs["fmu_log"])
    assert "store attack" in log  # it ran its attack
    assert "found " not in log, log  # and found no credential anywhere it could look
    assert "answered HTTP/1.1 200" not in log

    if store["kind"] == "gs":  # Cloud Run Jobs read from GCS only
        monkeypatch.setenv("VALIDIBOT_REPLAY_VERDICTS", "0")  # run it again there, not replay the Modal verdict
        pending, launch = fmi.simulate(hostile, store_uri=store["bucket"], backend=cloudrun_stand_in(),
                                       attempt="red-cloudrun", simulation_timeout_seconds=60)
        assert pending is None and launch.pending
        wait_for_executions()
        run_id = model_run_id(hostile, "simulation", "red-cloudrun")
        on_cloudrun, _ = collect_step(f"{store['bucket']}/runs/{run_id}/input.json")
        assert on_cloudrun.status == Status.SUCCESS, on_cloudrun.messages
        assert "found " not in "\n".join(on_cloudrun.outputs["fmu_log"])
    assert get_store(victim_output).read_bytes(victim_output) == before  # the verdict is what it was



def test_grant_json_is_the_whole_interface_and_holds_no_credential(store, sample_fmus, tmp_path) -> None:  # noqa: ANN001
    record = intake(sample_fmus["first_order_lag"].resolve().as_uri(), store_uri=store["bucket"])
    reference, grant = _attacker_grant(store["bucket"], record, "inspect-run")
    text = grant.model_dump_json()
    for secret in (os.environ.get("AWS_SECRET_ACCESS_KEY", "\0"), "PRIVATE KEY"):
        assert secret not in text and secret not in reference
    assert json.loads(text)["kind"] == "validibot.access-grant.v1"


def _record() -> LaunchRecord:
    return LaunchRecord(backend="test", launch_id="t", returncode=0, timed_out=False, seconds=0.0)


def test_the_control_plane_accepts_only_an_output_that_answers_its_envelope(local_root: str) -> None:
    """On any store (file:// here): the output must answer the envelope's exact bytes, name its run, and every
    artifact it names must be in its own bundle with the checksum it claims."""
    from tests.backend_helpers import write_envelope
    from validibot_pipelines.envelopes import OutputEnvelope, ValidationArtifact

    envelope, input_uri = write_envelope(local_root, "own-run")
    identity = hashlib.sha256(get_store(input_uri).read_bytes(input_uri)).hexdigest()
    bundle = envelope.context.execution_bundle_uri
    art = f"{bundle}/artifacts/timeseries.parquet"
    get_store(art).write_bytes(art, b"PAR1 rows")

    def answer(**changes: object) -> OutputEnvelope:
        out = OutputEnvelope(run_id=envelope.run_id, validator=envelope.validator, status=Status.SUCCESS,
                             input_envelope_sha256=identity, artifacts=[ValidationArtifact(
                                 name="timeseries.parquet", type="timeseries", mime_type="application/octet-stream",
                                 uri=art, sha256=hashlib.sha256(b"PAR1 rows").hexdigest())])
        out = out.model_copy(update=changes)
        uri = envelope.context.expected_output_uri
        get_store(uri).write_bytes(uri, out.model_dump_json().encode())
        return read_output(envelope, _record())

    assert answer().status == Status.SUCCESS
    cases = {
        "another envelope": ({"input_envelope_sha256": "0" * 64}, "answers another input envelope"),
        "no identity": ({"input_envelope_sha256": ""}, "answers another input envelope"),
        "another run": ({"run_id": "victim-run"}, "names run 'victim-run'"),
    }
    for what, (changes, words) in cases.items():
        rejected = answer(**changes)
        assert rejected.status == Status.FAILED_RUNTIME, what
        assert rejected.messages[0].code == "WORKER_OUTPUT_REJECTED" and words in rejected.messages[0].text, what
    get_store(art).write_bytes(art, b"changed after the worker wrote it")
    rejected = answer()
    assert rejected.messages[0].code == "WORKER_OUTPUT_REJECTED"
    assert "does not have the checksum" in rejected.messages[0].text
    get_store(art).delete(art)
    assert "is missing from the bundle" in answer().messages[0].text


def test_a_worker_that_runs_out_of_artifact_slots_is_told_what_to_raise() -> None:
    from datetime import UTC, datetime

    from validibot_pipelines.storage import StorageError
    from validibot_pipelines.storage.grant import ArtifactSlot, _GrantSession

    grant = AccessGrant(envelope_uri="s3://b/runs/r/input.json", bundle_uri="s3://b/runs/r", ttl_seconds=60,
                        signer="test", expires_at=datetime.now(UTC),
                        artifacts=[ArtifactSlot(uri=f"s3://b/runs/r/artifacts/{i:02d}", put="http://x")
                                   for i in (0, 1)])
    session = _GrantSession(grant)
    assert session.artifact_uri("a.parquet") == "s3://b/runs/r/artifacts/00"
    assert session.artifact_uri("a.parquet") == "s3://b/runs/r/artifacts/00"  # the same name keeps its slot
    assert session.artifact_uri("b.sql") == "s3://b/runs/r/artifacts/01"
    with pytest.raises(StorageError, match="VALIDIBOT_ARTIFACT_SLOTS"):
        session.artifact_uri("c.err")
