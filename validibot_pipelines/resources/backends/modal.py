"""Modal backend: run the worker as a deployed Modal function (``modal deploy -m
validibot_pipelines.validators.<validator>.modal_app``).

Per launch: read the input envelope, upload FMUs to the cache volume by checksum (``/<sha256>.fmu``, skipped
when already there), ``Function.from_name(app, fn).spawn(input_uri)``, record the call id, wait with
``FunctionCall.get(timeout=...)``. Modal failures become a :class:`LaunchRecord` with ``error`` set (the
pipeline turns it into ``failed_runtime``) and a sentence saying what to do: authenticate, deploy the app,
raise the timeout, or roll back with ``VALIDIBOT_<V>_BACKEND=local``.

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
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.resources.backends.modal_client import LocalModalStandIn, ModalClient, SdkModalClient
from validibot_pipelines.runtime.entrypoint import cache_file_name
from validibot_pipelines.storage import get_store
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
        started, t0 = now(), time.monotonic()
        client = self.client()
        envelope = load_input_envelope(get_store(input_uri).read_bytes(input_uri), where=input_uri)
        function = self.functions.get(envelope.validator.type, "")
        record = LaunchRecord(backend="modal", launch_id="", returncode=None, timed_out=False, seconds=0.0,
                              image=f"{self.app_name}/{function}", started_at=started,
                              details={"app": self.app_name, "function": function,
                                       "stand_in": "yes" if self.stand_in_volume_dir else "no"})

        def done(**changes: Any) -> LaunchRecord:
            update = {"seconds": round(time.monotonic() - t0, 4), "finished_at": now(), **changes}
            return record.model_copy(update=update)

        if not function:
            return done(error=f"no Modal function configured for validator type {envelope.validator.type!r}; "
                              f"add it to ModalBackend.functions (known: {', '.join(sorted(self.functions))})")
        if input_uri.startswith("file://") and not self.stand_in_volume_dir:
            return done(error=f"Modal workers cannot read {input_uri}: set VALIDIBOT_STORE_URI to a gs:// or s3:// "
                              "bucket the Modal function can reach, or roll back to the local backend")
        call_id = ""
        try:
            uploaded = self._upload_cache(client, envelope)
            record.details["volume_uploads"] = ", ".join(uploaded) or "none (already cached)"
            call_id = client.spawn(self.app_name, function, input_uri)
            record.launch_id = call_id
            if context is not None:
                context.log.info(f"modal: spawned {self.app_name}/{function} call {call_id} for {run_id}")
            result = client.get(call_id, timeout=timeout_seconds + self.grace_seconds)
        except TimeoutError:  # builtin: FunctionCall.get(timeout=...) gave up waiting
            client.cancel(call_id)
            return done(timed_out=True, log_tail=client.logs(call_id), error=(
                f"Modal call {call_id} did not finish within {timeout_seconds + self.grace_seconds:.0f} s and was "
                "cancelled; raise worker_timeout_seconds or the function's timeout, then re-run"))
        except Exception as exc:  # noqa: BLE001 - mapped below; anything else is re-raised
            message = modal_error_message(exc, self.app_name, function)
            if message is None:
                raise
            return done(error=message, log_tail=client.logs(call_id) if call_id else "")
        record.details["worker_version"] = str(result.get("validator", {}).get("version", ""))
        return done(returncode=0, log_tail=client.logs(call_id)[-4000:])

    def _upload_cache(self, client: ModalClient, envelope: Any) -> list[str]:
        """Put each cacheable input on the volume as ``/<sha256><suffix>`` unless it is already there."""
        if not self.cache_volume:
            return []
        cached = self.cache_mime_types or _model_types(envelope.validator.type)
        wanted = [f for f in envelope.input_files if f.mime_type in cached]
        missing = [f for f in wanted if not client.volume_has(self.cache_volume, _volume_path(f))]
        if not missing:
            return []
        with tempfile.TemporaryDirectory(prefix="validibot-modal-") as tmp:
            pairs = []
            for item in missing:
                local = Path(tmp) / item.name
                get_store(item.uri).download_file(item.uri, local)
                pairs.append((local, _volume_path(item)))
            client.volume_upload(self.cache_volume, pairs)
        return [f"{self.cache_volume}:{p}" for _, p in pairs]


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
