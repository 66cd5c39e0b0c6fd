"""Modal backend: run the worker as a deployed Modal function (``modal deploy -m
validibot_pipelines.validators.<validator>.modal_app``).

Per launch: read the input envelope, upload FMUs to the cache volume by checksum (``/<sha256>.fmu``, skipped
when already there), ``Function.from_name(app, fn).spawn(input_uri)``, record the call id, wait with
``FunctionCall.get(timeout=...)``. A batch (``launch_batch``) maps the function over its envelopes: each
distinct FMU uploaded once, one call per envelope spawned at once (``ModalClient.spawn_map``), each waited for
with its own timeout and recorded with its own call id, log and error. Modal failures become a
:class:`LaunchRecord` with ``error`` set (the pipeline turns it into ``failed_runtime``) and a sentence saying
what to do: authenticate, deploy the app, raise the timeout, or roll back with ``VALIDIBOT_<V>_BACKEND=local``.

Every Modal call goes through :mod:`.modal_client` (the one seam); ``stand_in_volume_dir`` switches it to
the local stand-in (tests, demos without a Modal account).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from validibot_pipelines.envelopes import load_input_envelope
from validibot_pipelines.envelopes.base import now
from validibot_pipelines.orchestration import access
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.modal_client import LocalModalStandIn, ModalClient, SdkModalClient
from validibot_pipelines.runtime.entrypoint import cache_file_name
from validibot_pipelines.storage import StorageError, get_store
from validibot_pipelines.validators import modal_functions


class ModalBackend(ConfigurableResource):
    """Spawn the validator's deployed Modal function and wait for it (one call per step)."""

    app_name: str = Field(default="", description="deployed Modal app, validibot-<v> "
                          "(modal deploy -m validibot_pipelines.validators.<v>.modal_app)")
    functions: dict[str, str] = Field(default_factory=modal_functions,
                                      description="validator type -> Modal function name")
    cache_volume: str = Field(default="", description="volume caching model files as /<sha256><suffix> ('' = none)")
    cache_mime_types: list[str] = Field(default_factory=list,
                                        description="inputs cached on the volume ([]: the validator's model files)")
    grace_seconds: float = Field(default=60.0, description="wait beyond the envelope timeout (cold starts)")
    stand_in_volume_dir: str = Field(default="", description="run the local stand-in with this folder as volumes")

    def client(self) -> ModalClient:
        if self.stand_in_volume_dir:
            return LocalModalStandIn(Path(self.stand_in_volume_dir), cache_volume=self.cache_volume)
        return SdkModalClient()

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        return self._launch([input_uri], timeout_seconds, context, names=[run_id])[0]

    def launch_batch(self, input_uris: list[str], *, batch_id: str, timeout_seconds: float,
                     context: Any = None) -> list[LaunchRecord]:
        """Map the function over the batch: one Modal call per envelope (``ModalClient.spawn_map``), all running
        at once on Modal's containers, each waited for with its own timeout; each FMU is uploaded to the cache
        volume once, however many envelopes name it. A record per envelope: its call id, log and outcome."""
        return self._launch(input_uris, timeout_seconds, context, batch_id=batch_id)

    def _launch(self, input_uris: list[str], timeout_seconds: float, context: Any, *,
                names: list[str] | None = None, batch_id: str = "") -> list[LaunchRecord]:
        started, t0 = now(), time.monotonic()
        client = self.client()
        envelopes = [load_input_envelope(get_store(uri).read_bytes(uri), where=uri) for uri in input_uris]
        names = names or [envelope.run_id for envelope in envelopes]
        records: list[LaunchRecord] = []
        for index, envelope in enumerate(envelopes):
            function = self.functions.get(envelope.validator.type, "")
            details: dict[str, Any] = {"app": self.app_name, "function": function,
                                       "stand_in": "yes" if self.stand_in_volume_dir else "no"}
            if batch_id:
                details.update(batch=batch_id, batch_size=len(input_uris), batch_index=index)
            records.append(LaunchRecord(backend="modal", launch_id="", returncode=None, timed_out=False, seconds=0.0,
                                        image=f"{self.app_name}/{function}", started_at=started, details=details))
        finished: dict[int, LaunchRecord] = {}

        def done(index: int, **changes: Any) -> None:
            update = {"seconds": round(time.monotonic() - t0, 4), "finished_at": now(), **changes}
            finished[index] = records[index].model_copy(update=update)

        by_function: dict[str, list[int]] = {}
        for index, (uri, envelope) in enumerate(zip(input_uris, envelopes, strict=True)):
            function = records[index].details["function"]
            if not function:
                done(index, error=f"no Modal function configured for validator type {envelope.validator.type!r}; "
                                  f"add it to ModalBackend.functions (known: {', '.join(sorted(self.functions))})")
            elif uri.startswith("file://") and not self.stand_in_volume_dir:
                done(index, error=f"Modal workers cannot read {uri}: set VALIDIBOT_STORE_URI to a gs:// or s3:// "
                                  "bucket the Modal function can reach, or roll back to the local backend")
            else:
                by_function.setdefault(function, []).append(index)
        for function, members in by_function.items():
            try:  # what each call is given: the envelope URI, or its signed grant (orchestration/access.py)
                references = [access.worker_reference(input_uris[i], timeout_seconds + self.grace_seconds,
                                                      envelopes[i]) for i in members]
            except (OSError, ValueError, StorageError) as exc:
                for index in members:
                    done(index, error=f"cannot sign access for {input_uris[index]}: {exc}")
                continue
            calls = self._spawn(client, function, references,
                                [envelopes[i] for i in members], [records[i] for i in members], bool(batch_id))
            if isinstance(calls, str):  # nothing runs: every envelope of the call gets the reason
                for index in members:
                    done(index, error=calls)
                continue
            for index, call_id in zip(members, calls, strict=True):
                records[index].launch_id = call_id
                if context is not None:
                    context.log.info(f"modal: spawned {self.app_name}/{function} call {call_id} for {names[index]}")
            deadline = time.monotonic() + timeout_seconds + self.grace_seconds
            waiting = list(members)
            try:
                while waiting:
                    index = waiting[0]
                    outcome = self._wait(client, function, records[index].launch_id, deadline, timeout_seconds)
                    if "worker_version" in outcome:
                        records[index].details["worker_version"] = outcome.pop("worker_version")
                    done(index, **outcome)
                    waiting.pop(0)
            except BaseException:  # not a Modal failure: stop what still runs, then let it surface
                for index in waiting:
                    client.cancel(records[index].launch_id)
                raise
        return [finished[index] for index in range(len(input_uris))]

    def _spawn(self, client: ModalClient, function: str, input_uris: list[str], envelopes: list[Any],
               records: list[LaunchRecord], mapped: bool) -> list[str] | str:
        """Upload the envelopes' uncached models, then spawn (one input) or map (a batch): the call ids, or the
        sentence saying why Modal refused."""
        try:
            uploaded = self._upload_cache(client, envelopes)
            for envelope, record in zip(envelopes, records, strict=True):
                own = [f"{self.cache_volume}:{_volume_path(item)}" for item in self._cacheable(envelope)
                       if _volume_path(item) in uploaded]
                record.details["volume_uploads"] = ", ".join(own) or "none (already cached)"
            if mapped:
                return client.spawn_map(self.app_name, function, input_uris)
            return [client.spawn(self.app_name, function, input_uris[0])]
        except Exception as exc:  # noqa: BLE001 - mapped below; anything else is re-raised
            message = modal_error_message(exc, self.app_name, function)
            if message is None:
                raise
            return message

    def _wait(self, client: ModalClient, function: str, call_id: str, deadline: float,
              timeout_seconds: float) -> dict[str, Any]:
        """Wait for one call until ``deadline`` (its timeout + grace from when it was spawned): the record's
        outcome fields."""
        try:
            result = client.get(call_id, timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:  # builtin: FunctionCall.get(timeout=...) gave up waiting
            client.cancel(call_id)
            return {"timed_out": True, "log_tail": client.logs(call_id), "error": (
                f"Modal call {call_id} did not finish within {timeout_seconds + self.grace_seconds:.0f} s and was "
                "cancelled; raise worker_timeout_seconds or the function's timeout, then re-run")}
        except Exception as exc:  # noqa: BLE001 - mapped below; anything else is re-raised
            message = modal_error_message(exc, self.app_name, function)
            if message is None:
                raise
            return {"error": message, "log_tail": client.logs(call_id)}
        return {"returncode": 0, "log_tail": client.logs(call_id)[-4000:],
                "worker_version": str(result.get("validator", {}).get("version", ""))}

    def _cacheable(self, envelope: Any) -> list[Any]:
        """The envelope's inputs that go to the cache volume (its models, or ``cache_mime_types``)."""
        if not self.cache_volume:
            return []
        cached = self.cache_mime_types or _model_types(envelope.validator.type)
        return [f for f in envelope.input_files if f.mime_type in cached]

    def _upload_cache(self, client: ModalClient, envelopes: list[Any]) -> set[str]:
        """Put each cacheable input on the volume as ``/<sha256><suffix>`` unless it is already there, each
        distinct file once however many envelopes name it; the volume paths uploaded."""
        if not self.cache_volume:
            return set()
        wanted: dict[str, Any] = {}
        for envelope in envelopes:
            for item in self._cacheable(envelope):
                wanted.setdefault(_volume_path(item), item)
        missing = {path: item for path, item in wanted.items() if not client.volume_has(self.cache_volume, path)}
        if not missing:
            return set()
        with tempfile.TemporaryDirectory(prefix="validibot-modal-") as tmp:
            pairs = []
            for n, (path, item) in enumerate(missing.items()):
                local = Path(tmp) / str(n) / item.name
                get_store(item.uri).download_file(item.uri, local)
                pairs.append((local, path))
            client.volume_upload(self.cache_volume, pairs)
        return set(missing)


def _volume_path(item: Any) -> str:
    return "/" + cache_file_name(item.sha256, item.name)  # where the worker looks (runtime/entrypoint.py)


def modal_error_message(exc: BaseException, app: str, function: str) -> str | None:
    """A sentence saying what went wrong on Modal and what to do, or None for errors that are not Modal's."""
    from modal import exception as mx

    module = app.removeprefix("validibot-")
    if isinstance(exc, mx.AuthError):
        return (f"Modal rejected the credentials ({exc}); run `modal token new` or give the code location "
                "MODAL_TOKEN_ID / MODAL_TOKEN_SECRET, or roll back with VALIDIBOT_<VALIDATOR>_BACKEND=local")
    if isinstance(exc, mx.NotFoundError):
        return (f"Modal function {app}/{function} is not deployed ({exc}); run "
                f"`modal deploy -m validibot_pipelines.validators.{module}.modal_app` in the Modal environment this "
                "code location uses")
    if isinstance(exc, mx.FunctionTimeoutError):
        return (f"Modal function {app}/{function} exceeded its own timeout ({exc}); raise `timeout=` in "
                f"validibot_pipelines/validators/{module}/modal_app.py and redeploy, or shorten the simulation")
    if isinstance(exc, mx.Error):
        return f"Modal call {app}/{function} failed: {type(exc).__name__}: {exc}"
    return None


def _model_types(validator_type: str) -> set[str]:
    """The MIME types of the models of the validator that runs ``validator_type`` (its registered suffixes)."""
    from validibot_pipelines.validators import owner_of
    from validibot_pipelines.validators.registry import get

    try:
        return set(get(owner_of(validator_type)).suffixes.values())
    except KeyError:
        return set()
