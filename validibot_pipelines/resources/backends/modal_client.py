"""The ONE seam between the Modal backend and the Modal cloud, with a local stand-in.

:class:`ModalClient` is the narrow protocol ``ModalBackend`` needs: does a file exist on a volume, upload
files to a volume, spawn a deployed function (once, or mapped over a batch's inputs), wait for a call, cancel
it. :class:`SdkModalClient` implements it with the Modal SDK (``modal.Function.from_name``, ``.spawn()``,
``FunctionCall.get(timeout=...)``, ``Volume.batch_upload(force=True)``). The Modal cloud is unreachable from
this machine, so tests use :class:`LocalModalStandIn`, which honours the same contract by running the SAME
Modal function object's body (``validibot_pipelines.validators.<v>.modal_app.<function>.local(input_uri)``) in
a child process — never in the control plane — with a local folder playing the volume. Failures are raised as the real
``modal.exception`` classes (the stand-in can be told to raise them), so the backend's error mapping is tested
against what the SDK raises.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from validibot_pipelines.orchestration import access
from validibot_pipelines.runtime.process import kill_group, tail


class ModalClient(Protocol):
    def volume_has(self, volume: str, path: str) -> bool: ...

    def volume_upload(self, volume: str, files: list[tuple[Path, str]]) -> None:
        """Upload ``(local path, remote path)`` pairs, overwriting (``force=True``)."""

    def spawn(self, app: str, function: str, input_uri: str) -> str:
        """Spawn the deployed function on ``input_uri``; returns the call id."""

    def spawn_map(self, app: str, function: str, input_uris: list[str]) -> list[str]:
        """Map the deployed function over ``input_uris``: one call per input, all spawned before any is waited
        for (Modal runs them on as many containers as the function may scale to); their call ids, in order.
        Raises before any call runs, or cancels the ones it spawned."""

    def get(self, call_id: str, timeout: float) -> dict[str, Any]:
        """The call's return value; builtin ``TimeoutError`` when it is not done within ``timeout``."""

    def cancel(self, call_id: str) -> None: ...

    def logs(self, call_id: str) -> str:
        """Worker log lines when the client can see them ("" otherwise)."""


class SdkModalClient:
    """The Modal SDK. Credentials come from the environment/profile (``modal token new``), never from config."""

    def _volume(self, name: str):  # noqa: ANN202 - modal type
        import modal

        return modal.Volume.from_name(name, create_if_missing=True)

    def volume_has(self, volume: str, path: str) -> bool:
        from modal.exception import NotFoundError

        try:
            return bool(self._volume(volume).listdir(path))
        except (NotFoundError, FileNotFoundError):
            return False

    def volume_upload(self, volume: str, files: list[tuple[Path, str]]) -> None:
        from modal.exception import AuthError, Error, NotFoundError

        vol = self._volume(volume)
        try:
            with vol.batch_upload(force=True) as batch:
                for local, remote in files:
                    batch.put_file(str(local), remote)
        except (AuthError, NotFoundError):
            raise
        except Error:  # fallback: one put_file per file, streamed from an open handle (smaller requests)
            for local, remote in files:
                with open(local, "rb") as fh, vol.batch_upload(force=True) as batch:
                    batch.put_file(fh, remote)

    def spawn(self, app: str, function: str, input_uri: str) -> str:
        import modal

        return modal.Function.from_name(app, function).spawn(input_uri).object_id

    def spawn_map(self, app: str, function: str, input_uris: list[str]) -> list[str]:
        """The function looked up once and ``.spawn()`` per input. Not ``Function.spawn_map``: in this SDK it
        returns nothing (no handle to wait on, cancel or name in a record); not ``.map``: it blocks and gives
        no call ids. Spawned inputs are scheduled onto the function's containers the way a map's are."""
        import modal

        fn = modal.Function.from_name(app, function)
        calls: list = []
        try:
            for input_uri in input_uris:
                calls.append(fn.spawn(input_uri))
        except BaseException:
            for call in calls:  # none half-launched: the caller gets the error for the whole map
                with contextlib.suppress(Exception):
                    call.cancel()
            raise
        return [call.object_id for call in calls]

    def get(self, call_id: str, timeout: float) -> dict[str, Any]:
        import modal

        return modal.FunctionCall.from_id(call_id).get(timeout=timeout)

    def cancel(self, call_id: str) -> None:
        import modal

        modal.FunctionCall.from_id(call_id).cancel()

    def logs(self, call_id: str) -> str:
        return ""  # Modal keeps them: `modal app logs <app>` or the call's page in the Modal dashboard


_CHILD = """
import importlib, json, sys
module, function, input_uri = sys.argv[1:4]
fn = getattr(importlib.import_module(module), function)
result = fn.local(input_uri)
sys.stdout.write("\\n" + json.dumps(result))
"""


@dataclass
class _Call:
    proc: subprocess.Popen
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)


class LocalModalStandIn:
    """Runs ``validibot_pipelines.validators.<v>.modal_app.<function>.local(input_uri)`` in a child process; a
    folder is the volume.

    A Modal app name maps to the module that defines it by the deploy convention (``validibot-<v>`` →
    ``validibot_pipelines.validators.<v>.modal_app``, deployed with ``modal deploy -m`` that module); ``apps``
    overrides that.
    ``volume_root/<volume name>/`` holds the volume's files; the child gets
    ``VALIDIBOT_FMU_CACHE_DIR`` pointing at the FMU volume so the function body reads the uploaded FMU the way
    it reads the mount on Modal. ``fail`` makes the named operation raise a given exception (real
    ``modal.exception`` classes) to test the backend's error mapping.
    """

    def __init__(self, volume_root: Path, apps: dict[str, str] | None = None, cache_volume: str = "",
                 fail: dict[str, BaseException] | None = None) -> None:
        self.volume_root = Path(volume_root)
        self.apps = apps or {}
        self.cache_volume = cache_volume
        self.fail = fail or {}
        self.calls: dict[str, _Call] = {}
        self.uploads: list[str] = []
        self.maps: list[list[str]] = []  # the call ids of each spawn_map (tests)

    def _maybe_fail(self, op: str) -> None:
        if op in self.fail:
            raise self.fail[op]

    def _path(self, volume: str, path: str) -> Path:
        return self.volume_root / volume / path.lstrip("/")

    def volume_has(self, volume: str, path: str) -> bool:
        self._maybe_fail("volume_has")
        return self._path(volume, path).is_file()

    def volume_upload(self, volume: str, files: list[tuple[Path, str]]) -> None:
        self._maybe_fail("volume_upload")
        for local, remote in files:
            target = self._path(volume, remote)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
            self.uploads.append(f"{volume}:{remote}")

    def spawn(self, app: str, function: str, input_uri: str) -> str:
        self._maybe_fail("spawn")
        return self._start(self._module(app), function, input_uri)

    def spawn_map(self, app: str, function: str, input_uris: list[str]) -> list[str]:
        """One child process per input, all started at once (Modal's containers scaling out for a map)."""
        self._maybe_fail("spawn_map")
        module = self._module(app)
        ids = [self._start(module, function, uri) for uri in input_uris]
        self.maps.append(ids)
        return ids

    def _module(self, app: str) -> str:
        from modal.exception import NotFoundError

        module = self.apps.get(app) or (f"validibot_pipelines.validators.{app.removeprefix('validibot-')}.modal_app"
                                        if app.startswith("validibot-") else None)
        if module is None or not _module_exists(module):
            raise NotFoundError(f"App '{app}' not found in environment 'main'")
        return module

    def _start(self, module: str, function: str, input_uri: str) -> str:
        # Same imports as here; no storage or Modal credentials: the function has no secret attached, its grant
        # (in the input URI) is all it can reach the store with.
        env = {**access.without_credentials(dict(os.environ)), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        if self.cache_volume:
            env["VALIDIBOT_FMU_CACHE_DIR"] = str(self.volume_root / self.cache_volume)
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, module, function, input_uri], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        call = _Call(proc)
        for stream, sink in ((proc.stdout, call.out), (proc.stderr, call.err)):
            thread = threading.Thread(target=lambda s=stream, k=sink: k.extend(s), daemon=True)
            thread.start()
            call.threads.append(thread)
        call_id = f"fc-local-{uuid.uuid4().hex[:20]}"
        self.calls[call_id] = call
        return call_id

    def get(self, call_id: str, timeout: float) -> dict[str, Any]:
        from modal.exception import ExecutionError

        self._maybe_fail("get")
        call = self.calls[call_id]
        try:
            call.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError() from None  # what FunctionCall.get(timeout=...) raises
        for thread in call.threads:
            thread.join()
        if call.proc.returncode != 0:
            raise ExecutionError(f"function call {call_id} failed with exit code {call.proc.returncode}: "
                                 f"{tail(''.join(call.err), 10)}")
        return json.loads("".join(call.out).rsplit("\n", 1)[-1])

    def cancel(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call and call.proc.poll() is None:
            kill_group(call.proc)
            call.proc.wait()

    def logs(self, call_id: str) -> str:
        call = self.calls.get(call_id)
        return "".join(call.out[:-1] + call.err) if call else ""


def _module_exists(module: str) -> bool:
    """Whether the app's module can be imported (a missing parent package counts as missing, not an error)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
