"""The container contract, implemented once for every backend.

``VALIDIBOT_INPUT_URI`` → input envelope → runner → output envelope at ``context.expected_output_uri``.
Exit code 0 whenever the output envelope was written (whatever the verdict); non-zero only when the worker
itself could not read its input or write its output. Replays: an existing output whose
``input_envelope_sha256`` matches this envelope's bytes is returned without recomputing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from validibot_pipelines.envelopes import (
    InputEnvelope,
    OutputEnvelope,
    Severity,
    Status,
    ValidationMessage,
    envelope_sha256,
    load_input_envelope,
    load_output_envelope,
)
from validibot_pipelines.envelopes.base import EnvelopeError, now
from validibot_pipelines.envelopes.bounds import bound_output
from validibot_pipelines.runtime import sandbox, trash
from validibot_pipelines.runtime.context import RunContext, file_sha256
from validibot_pipelines.runtime.process import install_sigterm_exit
from validibot_pipelines.runtime.registry import runner_for
from validibot_pipelines.storage import StorageError, get_store
from validibot_pipelines.storage.grant import granted, parse_grant, without_query

ENV_INPUT = "VALIDIBOT_INPUT_URI"
ENV_OUTPUT = "VALIDIBOT_OUTPUT_URI"
ENV_RUN_ID = "VALIDIBOT_RUN_ID"
# Optional read-only folder of inputs named ``<sha256><suffix>`` (the Modal FMU cache volume): a hit is used
# instead of downloading; its checksum is still verified like any download.
ENV_INPUT_CACHE = "VALIDIBOT_INPUT_CACHE_DIR"


class WorkerBroken(RuntimeError):
    """The worker cannot honour the contract (input unreadable, output unwritable): exit non-zero."""


def _line(text: str) -> None:
    """One log line to stderr in one write: ``print`` writes the text and the newline separately, so lines of two
    lanes could merge into one — and a model's lines must stay its own (``batch_records`` splits them by run)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _pipes_logger(params: dict[str, str] | None = None,
                  run_id: str | None = None) -> Iterator[tuple[Callable[[str], None], object | None]]:
    """Stream logs through Dagster Pipes when launched by a Pipes client, else to stderr.

    ``params``: the Pipes bootstrap variables of this launch when they do not come from the environment (a
    worker session serves several launches, each with its own Pipes session, ``runtime/session.py``).
    """
    run_id = run_id or os.environ.get(ENV_RUN_ID, "-")

    def to_stderr(msg: str) -> None:
        _line(f"[validibot-worker {run_id}] {msg}")

    from dagster_pipes import (
        PipesContext,
        PipesDefaultContextLoader,
        PipesDefaultMessageWriter,
        PipesEnvVarParamsLoader,
        PipesMappingParamsLoader,
        open_dagster_pipes,
    )

    loader = PipesMappingParamsLoader(params) if params is not None else PipesEnvVarParamsLoader()
    if not loader.is_dagster_pipes_process():
        yield to_stderr, None
        return
    # open_dagster_pipes keeps one context per process (a second call returns the first, closed one), so a
    # session's later launches build their own context from the same default loader and writer.
    opened = open_dagster_pipes() if params is None else PipesContext(
        params_loader=loader, context_loader=PipesDefaultContextLoader(), message_writer=PipesDefaultMessageWriter())
    with opened as pipes:

        def both(msg: str) -> None:
            to_stderr(msg)
            pipes.log.info(msg)

        yield both, pipes


def cache_file_name(sha256: str, name: str) -> str:
    """How an input is named in the cache folder (``<sha256><suffix>``); ModalBackend uploads by this name."""
    return f"{sha256}{Path(name).suffix.lower()}"


def _cached(cache: str | None, sha256: str, name: str) -> Path | None:
    if not cache:
        return None
    candidate = Path(cache) / cache_file_name(sha256, name)
    return candidate if candidate.is_file() else None


def _stage_inputs(envelope: InputEnvelope, workdir: Path, cache: str | None = None) -> dict[str, Path]:
    """Download every input file and verify its checksum, so a worker never runs on bytes it didn't expect."""
    staged: dict[str, Path] = {}
    for item in [*envelope.input_files, *envelope.resource_files]:
        local = workdir / "inputs" / item.name
        cached = _cached(cache, item.sha256, item.name)
        if cached is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, local)
        else:
            get_store(item.uri).download_file(item.uri, local)
        actual = file_sha256(local)
        if actual != item.sha256:
            raise WorkerBroken(
                f"{item.name}: checksum mismatch ({actual} != {item.sha256}) downloading {item.uri}; "
                "the stored copy changed after the envelope was written — re-run intake"
            )
        staged[item.role] = local
    return staged


def replayable_output(expected: str, identity: str,
                      log: Callable[[str], None] = lambda _msg: None) -> OutputEnvelope | None:
    """The output already at ``expected`` for exactly this envelope (same ``input_envelope_sha256``), if any.

    The idempotency rule of the contract; launchers that must not start a worker for nothing use it too.
    """
    store = get_store(expected)
    if not store.exists(expected):
        return None
    try:
        previous = load_output_envelope(store.read_bytes(expected), where=expected)
    except EnvelopeError as exc:
        log(f"existing output is unreadable ({exc}); recomputing")
        return None
    if previous.input_envelope_sha256 != identity:
        log(f"{expected} exists for a different envelope; recomputing")
        return None
    return previous


def remove_tree(path: Path, log: Callable[[str], None]) -> None:
    """Delete a work folder (or a file) whatever a model left in it.

    ``shutil.rmtree`` first (no process to start: it runs for every envelope of a batch); ``rm -rf`` when that
    fails. Why the fallback: Python 3.11's rmtree recurses per directory level, and a model that nests 3,000
    folders makes it raise RecursionError; coreutils walks any depth and opens up read-only folders first.
    """
    import subprocess

    try:
        if path.is_symlink() or not path.is_dir():  # a plain file (a lane's copied result.npy): no walk, no rm
            path.unlink()
        else:
            shutil.rmtree(path)
        return
    except FileNotFoundError:
        return
    except (OSError, RecursionError):
        pass
    try:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], check=False, timeout=300,
                       capture_output=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"could not remove {path}: {exc}")
    if path.exists():
        log(f"could not remove {path} completely; delete it by hand")


def execute(input_uri: str, *, log: Callable[[str], None] = print, output_uri: str | None = None,
            input_cache_dir: str | None = None) -> OutputEnvelope:
    """Run one envelope end to end and return the output envelope that was written.

    ``input_cache_dir`` (default: ``VALIDIBOT_INPUT_CACHE_DIR``) holds inputs by checksum, e.g. a Modal volume.
    """
    input_cache_dir = input_cache_dir or os.environ.get(ENV_INPUT_CACHE)
    raw = _read_input(input_uri)
    grant = parse_grant(raw)
    if grant is None:
        return _execute(input_uri, raw, log=log, output_uri=output_uri, input_cache_dir=input_cache_dir)
    # A signed launch: every store access of this envelope goes through the grant's URLs (storage/grant.py).
    with granted(grant):
        if grant.expired():
            log(f"the access grant expired at {grant.expires_at.isoformat()}; its signed URLs will be refused")
        raw = _read_input(grant.envelope_uri)
        return _execute(grant.envelope_uri, raw, log=log, output_uri=output_uri, input_cache_dir=input_cache_dir)


def _read_input(uri: str) -> bytes:
    try:
        return get_store(uri).read_bytes(uri)
    except FileNotFoundError:
        raise WorkerBroken(f"input envelope {without_query(uri)} does not exist; check {ENV_INPUT}") from None
    except StorageError as exc:
        raise WorkerBroken(f"input envelope: {exc}") from None


def _execute(input_uri: str, raw: bytes, *, log: Callable[[str], None], output_uri: str | None,
             input_cache_dir: str | None) -> OutputEnvelope:
    try:
        envelope = load_input_envelope(raw, where=input_uri)
    except EnvelopeError as exc:
        raise WorkerBroken(str(exc)) from None
    identity = envelope_sha256(raw)
    expected = envelope.context.expected_output_uri
    if output_uri and output_uri != expected:
        raise WorkerBroken(
            f"{ENV_OUTPUT}={output_uri} differs from the envelope's expected_output_uri {expected}; "
            f"unset {ENV_OUTPUT} or make them equal"
        )
    previous = replayable_output(expected, identity, log)
    if previous is not None:
        log(f"replay: {expected} already holds the result for this envelope; not recomputing")
        return previous

    output = OutputEnvelope(
        run_id=envelope.run_id, validator=envelope.validator, status=Status.FAILED_RUNTIME,
        input_envelope_sha256=identity,
    )
    output.timing.started_at = now()
    queued = envelope.context.tags.get("queued_at")
    if queued:
        try:
            output.timing.queued_at = datetime.fromisoformat(queued)
        except ValueError:
            log(f"ignoring unparseable queued_at tag {queued!r}")
    workdir = Path(tempfile.mkdtemp(prefix="validibot-"))
    try:
        try:
            files = _stage_inputs(envelope, workdir, input_cache_dir)
            runner = runner_for(envelope.validator.type)
            log(f"running {envelope.validator.type} {envelope.validator.version} for run {envelope.run_id}")
            runner(RunContext(envelope=envelope, workdir=workdir, files=files, output=output, log=log))
        except WorkerBroken as exc:
            output.status = Status.FAILED_RUNTIME
            output.error("WORKER_INPUT", str(exc))
        except sandbox.SandboxUnavailable as exc:  # the system's fault: this worker cannot confine a model
            output.status = Status.FAILED_RUNTIME
            output.error("SANDBOX_UNAVAILABLE", str(exc))
        except Exception as exc:  # the system's fault: keep the traceback in the log, a sentence in the envelope
            log(traceback.format_exc())
            output.status = Status.FAILED_RUNTIME
            output.error("WORKER_ERROR", f"{envelope.validator.type} worker failed: {type(exc).__name__}: {exc}")
        if note := sandbox.warning():
            output.messages.append(ValidationMessage(severity=Severity.WARNING, code="SANDBOX_DISABLED", text=note))
        output.timing.finished_at = now()
        try:
            output = bound_output(output)
            get_store(expected).write_bytes(expected, output.model_dump_json(indent=2).encode(),
                                            content_type="application/json")
        except Exception as exc:
            raise WorkerBroken(f"could not write output envelope to {expected}: {exc}") from exc
    finally:  # after the envelope is written: nothing a model left in its scratch folder can cost the verdict
        trash.discard(workdir, workdir.parent, lambda path: remove_tree(path, log))
    log(f"wrote {expected}: {output.status.value}")
    return output


def _not_dumpable() -> None:
    """Make this trusted worker non-dumpable: a model's process running as the same user (container mode: no
    user namespace) can then neither read ``/proc/<worker>/environ`` (the store's credentials) nor ptrace it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


def run_manifest(manifest: str, *, run_id: str | None = None, pipes_params: dict[str, str] | None = None,
                 pool: list | None = None) -> int:
    """``VALIDIBOT_BATCH_URI``: every envelope of the manifest (this task's shard of it on Cloud Run); the exit
    code of the launch. A worker session passes its Pipes variables and its lanes (``runtime/session.py``)."""
    from validibot_pipelines.runtime import batch

    with _pipes_logger(pipes_params, run_id) as (log, pipes):
        try:
            inputs = batch.shard(batch.read_manifest(manifest))
        except batch.BatchManifestError as exc:
            log(f"worker broken: {exc}")
            return 3

        def run_one(uri: str) -> str:
            run_id = batch.run_id_of(uri)

            def own(msg: str) -> None:  # to stderr (the step's compute log), prefixed with the envelope's run
                _line(f"[validibot-worker {run_id}] {msg}")

            result = execute(uri, log=own)
            # One line per model in the run's event log (its verdict), not every line of every model.
            log(f"{run_id}: {result.status.value}")
            if pipes is not None:
                pipes.report_custom_message({"status": result.status.value, "run_id": result.run_id})
            return result.status.value

        outcomes = batch.execute_batch(inputs, run_one, log, pool=pool)
        broken = [o for o in outcomes if not o.status]
        log(f"batch {manifest}: {len(outcomes) - len(broken)} of {len(outcomes)} envelope(s) answered")
    return 3 if broken else 0


def run_input(input_uri: str, *, run_id: str | None = None, pipes_params: dict[str, str] | None = None,
              pool: list | None = None) -> int:
    """One envelope, as a ``VALIDIBOT_INPUT_URI`` launch runs it (every log line through Pipes), but on a worker
    session's first lane, whose warm sandbox the model's child is forked from (``runtime/session.py``)."""
    from validibot_pipelines.runtime.sandbox import warm

    lane = warm.using(pool[0]) if pool else contextlib.nullcontext()
    with _pipes_logger(pipes_params, run_id) as (log, pipes), lane:
        try:
            result = execute(input_uri, log=log)
        except WorkerBroken as exc:
            log(f"worker broken: {exc}")
            return 3
        except Exception:  # noqa: BLE001 - as a fresh worker would die of it (exit 1, the traceback in its log)
            _line(traceback.format_exc().rstrip())
            return 1
        if pipes is not None:
            pipes.report_custom_message({"status": result.status.value, "run_id": result.run_id})
    return 0


def main(argv: list[str] | None = None) -> int:
    from validibot_pipelines.runtime.batch import ENV_BATCH

    install_sigterm_exit()
    _not_dumpable()
    from validibot_pipelines.runtime.session import ENV_SESSION, serve

    if os.environ.get(ENV_SESSION) == "1":
        # Every manifest's outputs are written and its lanes are closed when serve returns; the launcher
        # waits for this exit, and tearing down an interpreter that loaded pyarrow, numpy and pydantic costs
        # it ~50 ms more for nothing.
        status = serve()
        trash.drain()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    if manifest := os.environ.get(ENV_BATCH):
        return run_manifest(manifest)
    input_uri = os.environ.get(ENV_INPUT) or (argv or sys.argv[1:] or [None])[0]
    if not input_uri:
        print(f"validibot-worker: set {ENV_INPUT} (one input envelope URI) or {ENV_BATCH} (a batch manifest)",
              file=sys.stderr)
        return 2
    with _pipes_logger() as (log, pipes):
        try:
            result = execute(input_uri, log=log, output_uri=os.environ.get(ENV_OUTPUT))
        except WorkerBroken as exc:
            log(f"worker broken: {exc}")
            return 3
        if pipes is not None:
            pipes.report_custom_message({"status": result.status.value, "run_id": result.run_id})
    return 0
