"""Write an input envelope into a fresh execution bundle, launch it on a backend, read the output back.

Whatever the backend does, the caller gets an :class:`OutputEnvelope`: a worker that died without writing
one, or wrote garbage, becomes ``failed_runtime`` with a message saying so (the system's fault).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from validibot_pipelines.envelopes import (
    ExecutionContext,
    InputEnvelope,
    InputFileItem,
    OutputEnvelope,
    Status,
    ValidatorRef,
    load_input_envelope,
    load_output_envelope,
)
from validibot_pipelines.envelopes.base import EnvelopeError, SandboxLimits, now
from validibot_pipelines.orchestration import access
from validibot_pipelines.orchestration.layout import bundle_uri, result_index_uri
from validibot_pipelines.resources.backends.base import ComputeBackend, LaunchRecord
from validibot_pipelines.storage import get_store, join_uri

Backend = ComputeBackend  # the one launch contract (resources/backends/base.py)

def step_run_id(sha256: str, step: str, attempt: str, model: str = "") -> str:
    """Execution bundle name: readable, unique per Dagster run and model (the same bytes under two names in one
    batch get two bundles), stable across retries of the same run."""
    named = f"-{hashlib.sha256(model.encode()).hexdigest()[:8]}" if model else ""
    return f"{sha256[:16]}-{step}-{attempt}{named}"

def model_run_id(record: Any, step: str, attempt: str) -> str:
    """The bundle name of ``step`` for a model's record (its checksum and its partition, see step_run_id)."""
    return step_run_id(record.sha256, step, attempt, record.partition_key)


def model_tags(record: Any) -> dict[str, str]:
    """Envelope tags naming the model a step runs for: its checksum, and its partition (the output sensor
    resumes that partition after an asynchronous launch; not part of the envelope's identity, see replay)."""
    return {"model_sha256": record.sha256, "model": record.partition_key}

def step_settings(context: Any) -> Any:
    """The deployment's ``settings`` resource of a Dagster step, else ``None`` (the CLI has no settings).

    Read from the step's context so the asset bodies need not pass limits down (validators read their side-file
    limits from it by field name; ``None`` means their defaults).
    """
    return getattr(getattr(context, "resources", None), "settings", None)  # unknown key: an AttributeError

def rejected_before_launch(run_id: str, validator: ValidatorRef,
                           messages: list[Any]) -> tuple[OutputEnvelope, LaunchRecord]:
    """``failed_validation`` for a step whose inputs the control plane refused: nothing was launched."""
    out = OutputEnvelope(run_id=run_id, validator=validator, status=Status.FAILED_VALIDATION, messages=messages)
    return out, LaunchRecord(backend="control-plane", launch_id="", returncode=None, timed_out=False, seconds=0.0,
                             log_tail="not launched: a side file was rejected in the control plane")


def launch_step(
    *,
    store_uri: str,
    run_id: str,
    validator: ValidatorRef,
    files: list[InputFileItem],
    inputs: dict[str, Any],
    backend: Backend,
    timeout_seconds: int,
    context: Any = None,
    tags: dict[str, str] | None = None,
) -> tuple[OutputEnvelope | None, LaunchRecord]:
    """Write the input envelope into a fresh bundle and launch it; ``None`` output = pending (async backend)."""
    bundle = bundle_uri(store_uri, run_id)
    envelope = InputEnvelope(
        run_id=run_id, validator=validator, input_files=files, inputs=inputs,
        context=ExecutionContext(
            callback_id=run_id, execution_bundle_uri=bundle, expected_output_uri=join_uri(bundle, "output.json"),
            timeout_seconds=timeout_seconds, limits=sandbox_limits(context),
            tags={"queued_at": now().isoformat(), **(tags or {})},
        ),
    )
    replayed = replay(store_uri, envelope) if _replays(context) else None
    if replayed is not None:
        return replayed
    input_uri = join_uri(bundle, "input.json")
    if not _same_request_already_written(input_uri, envelope):
        get_store(input_uri).write_bytes(input_uri, envelope.model_dump_json(indent=2).encode(), "application/json")
    record = backend.launch(input_uri, run_id=run_id, timeout_seconds=timeout_seconds, context=context)
    if record.pending:  # asynchronous backend: the output sensor collects the result later (collect_step)
        return None, record
    out = read_output(envelope, record)
    remember(store_uri, envelope, out)
    return out, record


# --- replay by envelope identity ------------------------------------------------------------------------------
#
# The same bytes under two names (``hvac/a.fmu`` and ``plant/a.fmu``) are one stored copy, so their input
# envelopes differ only in what names the run (run id, bundle, queue time). The identity is the envelope without
# those: the validator and its version, every input file (name, role, checksum, content-addressed URI), the
# inputs, the timeout and sandbox limits (not the ``model`` tag: which of the names asked). A verdict
# (``success`` or ``failed_validation``) found for an identity
# is replayed from its bundle instead of launching again; ``failed_runtime`` (the system's fault) never is. Only
# the trusted control plane writes the index, after reading the trusted worker's output envelope.

_RUN_FIELDS = ("callback_id", "execution_bundle_uri", "expected_output_uri")
_REPLAYED = {Status.SUCCESS, Status.FAILED_VALIDATION}


def envelope_identity(envelope: InputEnvelope) -> str:
    """SHA-256 of what the worker sees, without the fields that only name this run."""
    data = envelope.model_dump(mode="json")
    data.pop("run_id", None)
    for name in _RUN_FIELDS:
        data["context"].pop(name, None)
    for tag in ("queued_at", "model"):  # when it was queued, and for which of the names sharing these bytes
        data["context"]["tags"].pop(tag, None)
    data["code_version"] = _code_version(envelope.validator.type)  # a new engine (EnergyPlus, Gmsh …) re-runs
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _code_version(validator_type: str) -> str:
    from validibot_pipelines.operations.versions import validator_code_version
    from validibot_pipelines.validators import owner_of

    try:
        return validator_code_version(owner_of(validator_type))
    except KeyError:
        return ""


def remember(store_uri: str, envelope: InputEnvelope, out: OutputEnvelope) -> None:
    """Index a verdict under its envelope's identity (``results/<identity>.json``)."""
    if out.status not in _REPLAYED or out.run_id != envelope.run_id:
        return
    identity = envelope_identity(envelope)
    output_uri = envelope.context.expected_output_uri
    uri = result_index_uri(store_uri, identity)
    get_store(uri).write_bytes(uri, json.dumps({
        "identity": identity, "output_uri": output_uri, "run_id": envelope.run_id,
        "output_sha256": hashlib.sha256(get_store(output_uri).read_bytes(output_uri)).hexdigest(),
    }).encode(), "application/json")


def _replays(context: Any) -> bool:
    """The step's ``settings.replay_verdicts``, else ``VALIDIBOT_REPLAY_VERDICTS`` (the CLI has no settings)."""
    settings = step_settings(context)
    if settings is not None and hasattr(settings, "replay_verdicts"):
        return bool(settings.replay_verdicts)
    from validibot_pipelines.settings import replay_verdicts_from_env

    return replay_verdicts_from_env()


def replay(store_uri: str, envelope: InputEnvelope) -> tuple[OutputEnvelope, LaunchRecord] | None:
    """The verdict already reached for identical inputs, or ``None`` (then the step launches)."""
    identity = envelope_identity(envelope)
    uri = result_index_uri(store_uri, identity)
    store = get_store(uri)
    try:
        pointer = json.loads(store.read_bytes(uri))
        output_uri = str(pointer["output_uri"])
        raw = get_store(output_uri).read_bytes(output_uri)
        out = load_output_envelope(raw, where=output_uri)
        bundle_input = output_uri.rsplit("/", 1)[0] + "/input.json"
        recorded = load_input_envelope(get_store(bundle_input).read_bytes(bundle_input), where=bundle_input)
    except (FileNotFoundError, KeyError, TypeError, ValueError, EnvelopeError):
        return None  # none yet, or its bundle was pruned: launch
    # Replay only what the index vouches for: the bundle still holds a request of this identity and the very
    # output read when the verdict was indexed (a bundle rewritten since, by anything, is recomputed instead).
    if (pointer.get("identity") != identity or envelope_identity(recorded) != identity
            or hashlib.sha256(raw).hexdigest() != pointer.get("output_sha256") or out.status not in _REPLAYED
            or out.run_id != recorded.run_id):
        return None
    record = LaunchRecord(backend="replay", launch_id=str(pointer.get("run_id", "")), returncode=0, timed_out=False,
                          seconds=0.0, log_tail=f"replay: not launched, identical inputs were validated by "
                                                f"{pointer.get('run_id')} ({output_uri}); its verdict is replayed")
    return out, record


def sandbox_limits(context: Any = None) -> SandboxLimits:
    """The limits for the model's sandboxed processes: the step's ``settings`` resource, else the environment.

    Read from the step's context so no asset body has to pass them; ``validibot validate`` (no Dagster context)
    gets the same ``VALIDIBOT_SANDBOX_*`` environment defaults the settings resource uses.
    """
    settings = getattr(getattr(context, "resources", None), "settings", None)
    if settings is not None and hasattr(settings, "sandbox_limits"):
        return settings.sandbox_limits()
    from validibot_pipelines.settings import sandbox_limits_from_env

    return sandbox_limits_from_env()


def _same_request_already_written(input_uri: str, envelope: InputEnvelope) -> bool:
    """True when the bundle already holds this request (a retried step: same run id, files and inputs).

    Its bytes are then kept as they are — only ``queued_at`` would differ — so the envelope's identity stays
    the same: a finished output is replayed instead of recomputed, and an asynchronous launch still running
    for it is recognised instead of launched twice.
    """
    store = get_store(input_uri)
    if not store.exists(input_uri):
        return False
    try:
        existing = load_input_envelope(store.read_bytes(input_uri), where=input_uri)
    except EnvelopeError:
        return False

    def request(e: InputEnvelope) -> dict[str, Any]:
        data = e.model_dump(mode="json")
        data["context"]["tags"].pop("queued_at", None)
        return data

    return request(existing) == request(envelope)


def collect_step(input_uri: str) -> tuple[OutputEnvelope, LaunchRecord]:
    """Read the result of an asynchronous launch (Cloud Run Jobs) from its execution bundle.

    Called by the run the output sensor requests: the bundle's ``launch.json`` says which execution ran it,
    the backend is asked for its final status and log lines, and the output envelope is read exactly as for
    a synchronous launch (missing or malformed output → ``failed_runtime`` saying so).
    """
    from validibot_pipelines.resources.backends.cloudrun import describe_launch

    envelope = load_input_envelope(get_store(input_uri).read_bytes(input_uri), where=input_uri)
    record = describe_launch(envelope.context.execution_bundle_uri)
    out = read_output(envelope, record)
    store_uri = envelope.context.execution_bundle_uri.rstrip("/").rsplit("/", 2)[0]  # <store>/runs/<run_id>
    remember(store_uri, envelope, out)
    return out, record


def read_output(envelope: InputEnvelope, record: LaunchRecord) -> OutputEnvelope:
    expected = envelope.context.expected_output_uri
    store = get_store(expected)

    def broken(code: str, text: str) -> OutputEnvelope:
        out = OutputEnvelope(run_id=envelope.run_id, validator=envelope.validator, status=Status.FAILED_RUNTIME)
        out.error(code, text)
        return out

    grant = access.read_grant(envelope)
    record.details.update(access.access_details(grant))
    written = store.exists(expected)
    if record.error and not written:
        return broken("BACKEND_ERROR", f"the {record.backend} launch {record.launch_id or '(not started)'} "
                      f"failed: {record.error}")
    if not written:
        if expired := access.expired_reason(grant, record.log_tail):
            return broken("ACCESS_EXPIRED", f"the {record.backend} worker ({record.launch_id}) wrote no output: "
                          f"{expired}")
        why = ("timed out and was killed" if record.timed_out else f"ended {record.status}" if record.status
               else f"exited with code {record.returncode}")
        return broken("WORKER_NO_OUTPUT", f"the {record.backend} worker ({record.launch_id}) {why} without writing "
                      f"{expected}; worker log tail: {record.log_tail[-800:] or '(empty)'}")
    try:
        out = load_output_envelope(store.read_bytes(expected), where=expected)
    except EnvelopeError as exc:
        return broken("WORKER_BAD_OUTPUT", f"{exc}; the worker image may not match this control plane version")
    input_uri = join_uri(envelope.context.execution_bundle_uri, "input.json")
    if (why := access.check_output(envelope, get_store(input_uri).read_bytes(input_uri), out)) is not None:
        return broken("WORKER_OUTPUT_REJECTED", f"{expected} was not accepted: {why}; the launch's result is "
                      "discarded — re-run the step, and if it recurs inspect the worker image and the bundle")
    return out
