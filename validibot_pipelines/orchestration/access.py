"""Per-launch access for isolated backends: what a worker is handed instead of storage credentials.

:func:`worker_reference` turns a canonical input envelope URI into what the worker gets: the URI itself on a
``file://`` store (the Docker backend bind-mounts only the bundle), else the signed GET URL of a fresh
``<bundle>/grant.json`` (``storage/grant.py``) whose URLs reach exactly this envelope's inputs and bundle and
expire with the launch (its timeout plus ``VALIDIBOT_SIGNED_URL_GRACE_SECONDS`` for queueing and start-up).
Every launch signs anew, so a retried step never inherits an expired grant; the envelope itself is not
rewritten, so its identity (replay) does not change with the signatures.

:func:`check_output` is the other half: the control plane accepts an output envelope only from the bundle it
signed for, answering that envelope's exact bytes, naming only artifacts inside that bundle whose stored bytes
have the checksums the envelope claims.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from validibot_pipelines.envelopes import InputEnvelope, OutputEnvelope, load_input_envelope
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.storage.grant import AccessGrant, ArtifactSlot
from validibot_pipelines.storage.signing import can_sign, sign_url, signer_identity

ENV_SIGNED = "VALIDIBOT_SIGNED_ACCESS"  # "1" (default) signs for isolated backends on gs:// / s3://; "0" forwards
ENV_GRACE = "VALIDIBOT_SIGNED_URL_GRACE_SECONDS"
ENV_SLOTS = "VALIDIBOT_ARTIFACT_SLOTS"
DEFAULT_GRACE_SECONDS = 300
DEFAULT_SLOTS = 64  # a validator type no registered validator owns
GRANT_NAME = "grant.json"


#: Environment variables that reach the store (or a cloud account): never in a worker that runs on a grant.
#: An emulator's address counts: an emulator takes anonymous requests, so knowing it is holding the key.
CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "CLOUDSDK_AUTH_ACCESS_TOKEN", "GCE_METADATA_HOST",
    "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "VALIDIBOT_GCS_SIGNING_KEY_FILE",
)


def without_credentials(env: dict[str, str]) -> dict[str, str]:
    """``env`` minus every storage or cloud credential (what the stand-ins give a worker on signed access,
    as the real Cloud Run job's service account and the Modal function hold none)."""
    if os.environ.get(ENV_SIGNED, "1").strip().lower() in ("0", "false", "no"):
        return dict(env)
    return {name: value for name, value in env.items() if name not in CREDENTIAL_VARS}


def signing_enabled(input_uri: str) -> bool:
    """True when launches on this store get signed URLs instead of credentials."""
    return can_sign(input_uri) and os.environ.get(ENV_SIGNED, "1").strip().lower() not in ("0", "false", "no")


def grant_ttl(timeout_seconds: float) -> int:
    return int(timeout_seconds) + int(os.environ.get(ENV_GRACE, DEFAULT_GRACE_SECONDS))


def worker_reference(input_uri: str, timeout_seconds: float, envelope: InputEnvelope | None = None) -> str:
    """What the worker is given for the envelope at ``input_uri`` (see the module docstring); ``envelope`` is
    that envelope when the caller has already read it."""
    if not signing_enabled(input_uri):
        return input_uri
    if envelope is None:
        envelope = load_input_envelope(get_store(input_uri).read_bytes(input_uri), where=input_uri)
    grant = build_grant(envelope, input_uri, grant_ttl(timeout_seconds))
    grant_uri = join_uri(envelope.context.execution_bundle_uri, GRANT_NAME)
    get_store(grant_uri).write_bytes(grant_uri, grant.model_dump_json(indent=2).encode(), "application/json")
    return sign_url(grant_uri, "GET", grant.ttl_seconds)


def batch_reference(input_uris: list[str], batch_id: str, timeout_seconds: float,
                    envelopes: list[InputEnvelope] | None = None) -> tuple[str, str]:
    """Write a batch's manifest and return (its canonical URI, what the worker is given for it).

    On a signed store the manifest lists each envelope's grant URL and is itself read through a signed URL;
    ``timeout_seconds`` is the whole launch's deadline (every grant of the batch lives that long).
    """
    from validibot_pipelines.runtime.batch import write_manifest

    known = envelopes or [None] * len(input_uris)
    references = [worker_reference(uri, timeout_seconds, envelope)
                  for uri, envelope in zip(input_uris, known, strict=True)]
    manifest = write_manifest(input_uris, batch_id, references=references)
    if not signing_enabled(manifest):
        return manifest, manifest
    return manifest, sign_url(manifest, "GET", grant_ttl(timeout_seconds))


def build_grant(envelope: InputEnvelope, input_uri: str, ttl: int) -> AccessGrant:
    """Sign GET for the envelope and its inputs, GET+PUT for its output, PUT for its artifact slots."""
    bundle = envelope.context.execution_bundle_uri
    output = envelope.context.expected_output_uri
    reads = [input_uri, output, *(item.uri for item in [*envelope.input_files, *envelope.resource_files])]
    slots = int(os.environ.get(ENV_SLOTS) or _validator_slots(envelope.validator.type))
    slot_uris = [join_uri(bundle, "artifacts", f"{i:02d}") for i in range(slots)]
    return AccessGrant(
        envelope_uri=input_uri, bundle_uri=bundle, ttl_seconds=ttl, signer=signer_identity(input_uri),
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
        read={uri: sign_url(uri, "GET", ttl) for uri in dict.fromkeys(reads)},
        write={output: sign_url(output, "PUT", ttl)},
        artifacts=[ArtifactSlot(uri=uri, put=sign_url(uri, "PUT", ttl)) for uri in slot_uris],
    )


def _validator_slots(validator_type: str) -> int:
    """How many artifacts the validator's worker may store per launch (its ``Validator.artifact_slots``)."""
    from validibot_pipelines.validators import owner_of
    from validibot_pipelines.validators.registry import get

    try:
        return get(owner_of(validator_type)).artifact_slots
    except KeyError:
        return DEFAULT_SLOTS


def read_grant(envelope: InputEnvelope) -> AccessGrant | None:
    """The grant the control plane signed for this envelope's last launch, if it signed one (never on a store
    that cannot sign: no read is spent looking)."""
    if not can_sign(envelope.context.execution_bundle_uri):
        return None
    uri = join_uri(envelope.context.execution_bundle_uri, GRANT_NAME)
    try:
        return AccessGrant.model_validate_json(get_store(uri).read_bytes(uri))
    except (FileNotFoundError, ValueError):
        return None


def check_output(envelope: InputEnvelope, envelope_bytes: bytes, out: OutputEnvelope) -> str | None:
    """Why ``out`` is not acceptable as this envelope's result, or ``None`` when it is.

    The output was read from the envelope's own ``expected_output_uri`` (the bundle signed for); it must answer
    these envelope bytes, and every artifact it names must lie in that bundle with the checksum it claims —
    so a worker cannot pass off another bundle's objects, or objects changed after it wrote them, as its own.
    """
    identity = hashlib.sha256(envelope_bytes).hexdigest()
    if out.input_envelope_sha256 != identity:
        return (f"it answers another input envelope (input_envelope_sha256 {out.input_envelope_sha256[:16]}…, "
                f"this one is {identity[:16]}…)")
    if out.run_id != envelope.run_id:
        return f"it names run {out.run_id!r}, not {envelope.run_id!r}"
    prefix = join_uri(envelope.context.execution_bundle_uri, "artifacts") + "/"
    for artifact in out.artifacts:
        if not artifact.uri.startswith(prefix):
            return f"artifact {artifact.name!r} lies outside this launch's bundle ({artifact.uri})"
        try:
            digest, _ = get_store(artifact.uri).sha256_and_size(artifact.uri)
        except FileNotFoundError:
            return f"artifact {artifact.name!r} is missing from the bundle ({artifact.uri})"
        if artifact.sha256 and digest != artifact.sha256:
            return f"artifact {artifact.name!r} does not have the checksum the envelope names ({artifact.uri})"
    return None


def access_details(grant: AccessGrant | None) -> dict[str, Any]:
    """What the asset metadata says about a launch's access: who signed, until when, how much."""
    if grant is None:
        return {}
    return {"signed_by": grant.signer, "access_expires_at": grant.expires_at.isoformat(),
            "access_ttl_seconds": grant.ttl_seconds,
            "access_objects": len(grant.read) + len(grant.write) + len(grant.artifacts)}


def expired_reason(grant: AccessGrant | None, log_tail: str) -> str | None:
    """A sentence for a launch that wrote nothing because its grant expired (or the worker said so)."""
    if grant is None:
        return None
    said = "signed URL expired" in log_tail
    if not (said or grant.expired()):
        return None
    return (f"the launch's signed URLs expired at {grant.expires_at.isoformat()} (valid {grant.ttl_seconds} s: the "
            f"step timeout plus {ENV_GRACE}) before the worker wrote its output; re-run the step (every launch "
            f"signs new URLs) and, if the backend queues long, raise {ENV_GRACE} or the step's timeout")
