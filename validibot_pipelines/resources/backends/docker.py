"""Docker backend: each worker launch is a fresh, locked-down container on a Docker-API engine.

Same contract as the local backend (``launch(input_uri, *, run_id, timeout_seconds, context)`` →
:class:`LaunchRecord`): the image's entrypoint is ``python -m validibot_pipelines.runtime`` and
``VALIDIBOT_INPUT_URI`` names the input envelope. ``launch_batch`` runs ONE container for several envelopes
(``VALIDIBOT_BATCH_URI`` names their manifest, ``runtime/batch.py``) with the same hardening, labels and limits,
a deadline of the envelopes' timeouts end to end, and every envelope's folders (and the manifest) mounted.
Talks to the engine with the docker SDK, so it works with Docker and with podman's Docker API (the tests use
podman).

Why not ``dagster_docker.PipesDockerClient``: it has no timeout, raises on a non-zero exit and stops but never
removes the container. Its Pipes message reader *is* used here (the worker writes Pipes messages to stderr;
they are read back from the container's log stream), so under Dagster the worker's log lines stream into the
run log while the container runs.

Hardening (design.md "Docker facts"): no network unless the store needs it; ``cap_drop=ALL``;
``no-new-privileges``; a pids limit; read-only root filesystem with a tmpfs ``/tmp`` (mounted ``exec``: fmpy
extracts the FMU there and must ``dlopen`` its binary); a non-root user; 4g memory and 2 CPUs by default.
For a ``file://`` store only the directories the envelope names are bind-mounted, at the same paths so the
envelope's URIs resolve unchanged: input folders read-only, the execution bundle read-write (for a batch: the
folders of all its envelopes, each once, and the manifest file read-only). For ``gs://`` / ``s3://`` stores
the container gets a network and the storage settings named in ``forward_env``.

Timeout: ``stop`` (SIGTERM, then SIGKILL after ``stop_grace_seconds``), then ``kill`` if it still runs. The
container is removed after every run, whatever happened; orphans of a dead control plane are removed by
:func:`sweep_orphans` (run before every launch, by the sensor and by ``validibot docker-cleanup``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, PipesEnvContextInjector, open_pipes_session
from dagster._core.pipes.utils import extract_message_or_forward_to_stdout
from dagster_docker.pipes import PipesDockerLogsMessageReader
from pydantic import Field

from validibot_pipelines.envelopes import InputEnvelope, load_input_envelope
from validibot_pipelines.envelopes.base import EnvelopeError
from validibot_pipelines.orchestration import access
from validibot_pipelines.resources.backends.base import LaunchRecord, batch_records
from validibot_pipelines.resources.backends.docker_sweep import (
    SweptContainer,
    container_labels,
    sweep_orphans,
)
from validibot_pipelines.resources.backends.pipes_context import op_context
from validibot_pipelines.runtime.batch import ENV_BATCH
from validibot_pipelines.runtime.entrypoint import ENV_INPUT, ENV_RUN_ID
from validibot_pipelines.storage import StorageError, get_store
from validibot_pipelines.storage.local import uri_to_path
from validibot_pipelines.validators import owner_of

WORKER_UID = "10001:10001"  # the image's USER; see containers/Dockerfile
DEFAULT_FORWARD_ENV = (
    "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION",
)
PIPES_MARKER = '"__dagster_pipes_version"'
LOG_LINES_KEPT = 200


class EngineLost(RuntimeError):
    """The engine connection broke while a container ran (not a timeout)."""


class DockerBackend(ConfigurableResource):
    """Run the worker image in a hardened container per launch (Docker or podman via the Docker API)."""

    image: str = Field(default="", description="worker image built by containers/build <validator>")
    docker_host: str | None = Field(default=None, description="engine URL; default $DOCKER_HOST or the local socket")
    memory: str = Field(default="4g", description="memory limit (docker mem_limit syntax)")
    cpus: float = Field(default=2.0, description="CPU limit")
    pids_limit: int = Field(default=512, description="max processes/threads in the container")
    tmpfs_size: str = Field(default="2g", description="size of the tmpfs /tmp (FMU extraction, scratch)")
    network: str | None = Field(default=None, description="None: 'none' for file:// stores, 'bridge' otherwise; "
                                "'host' reaches emulators on the host's loopback")
    forward_env: list[str] = Field(default=list(DEFAULT_FORWARD_ENV),
                                   description="host variables passed on when the store needs the network")
    user: str | None = Field(default=None, description="uid:gid; default 10001:10001 (control plane as root, the "
                             "bundle is chowned to it) or the control plane's own uid:gid")
    stop_grace_seconds: float = Field(default=10.0, description="SIGTERM → SIGKILL grace on timeout")
    sweep_grace_seconds: float = Field(default=300.0, description="orphans are removed after timeout + this")
    sweep_on_launch: bool = Field(default=True, description="sweep orphans before every launch")
    nested_sandbox: bool = Field(default=True, description="let the worker confine the model with bubblewrap "
                                 "inside the container (systempaths=unconfined: the engine's masked /proc paths "
                                 "keep bwrap from mounting the sandbox's own /proc); false: container mode")

    # --- engine -------------------------------------------------------------------------------------------

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.docker_host) if self.docker_host else docker.from_env()

    def sweep(self, *, now: datetime | None = None, remove_all: bool = False,
              grace_seconds: float | None = None) -> list[SweptContainer]:
        """Remove managed containers past their timeout + grace (see :mod:`.docker_sweep`)."""
        grace = self.sweep_grace_seconds if grace_seconds is None else grace_seconds
        return sweep_orphans(self.client(), grace_seconds=grace, now=now, remove_all=remove_all)

    # --- launch -------------------------------------------------------------------------------------------

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        try:
            reference = access.worker_reference(input_uri, timeout_seconds)
        except (EnvelopeError, OSError, ValueError, StorageError) as exc:
            return self._failed(run_id, time.monotonic(), f"cannot sign access for {input_uri}: {exc}")
        return self._launch([input_uri], {ENV_INPUT: reference, ENV_RUN_ID: run_id}, run_id, timeout_seconds,
                            context)

    def launch_batch(self, input_uris: list[str], *, batch_id: str, timeout_seconds: float,
                     context: Any = None) -> list[LaunchRecord]:
        """ONE container for the whole batch (``VALIDIBOT_BATCH_URI``, ``runtime/batch.py``): the same image,
        hardening, labels and limits as :meth:`launch`, every envelope's folders mounted, the manifest too;
        its deadline is the envelopes' timeouts end to end."""
        deadline = timeout_seconds * len(input_uris)
        try:
            manifest, reference = access.batch_reference(input_uris, batch_id, deadline)
        except (EnvelopeError, OSError, ValueError, StorageError) as exc:
            failed = self._failed(batch_id, time.monotonic(), f"cannot sign access for batch {batch_id}: {exc}")
            return [failed] * len(input_uris)
        record = self._launch(input_uris, {ENV_BATCH: reference, ENV_RUN_ID: batch_id}, batch_id,
                              deadline, context, extra_readable=[manifest])
        return batch_records(record, input_uris, manifest)

    def _launch(self, input_uris: list[str], worker_env: dict[str, str], run_id: str, timeout_seconds: float,
                context: Any, extra_readable: Sequence[str] = ()) -> LaunchRecord:
        """One container running the worker with ``worker_env`` for the envelopes ``input_uris``."""
        import docker.errors

        start = time.monotonic()
        try:
            client = self.client()
            client.ping()
        except docker.errors.DockerException as exc:
            return self._failed(run_id, start, f"cannot reach the container engine ({exc}); start Docker or set "
                                "DOCKER_HOST / docker_host to a Docker-API socket (podman system service works)")
        if self.sweep_on_launch:
            sweep_orphans(client, grace_seconds=self.sweep_grace_seconds)
        envelopes: list[InputEnvelope] = []
        try:
            for uri in input_uris:
                where = uri
                envelopes.append(load_input_envelope(get_store(uri).read_bytes(uri), where=uri))
            where = input_uris[0] if len(input_uris) == 1 else f"the {len(input_uris)} envelopes of batch {run_id}"
            spec = self._spec(list(zip(input_uris, envelopes, strict=True)), worker_env, run_id, timeout_seconds,
                              extra_readable)
            if spec["mounts"]:
                for envelope in envelopes:
                    _prepare_bundle(envelope, spec["user"])
        except (EnvelopeError, OSError, ValueError) as exc:
            return self._failed(run_id, start, f"cannot prepare the container for {where}: {exc}")
        with _pipes_session(context) as (bootstrap_env, reader):
            spec["environment"].update(bootstrap_env)
            try:
                container = client.containers.create(self.image, detach=True, **spec)
            except docker.errors.ImageNotFound:
                return self._failed(run_id, start, f"image {self.image} not found on the engine; build it with "
                                    f"`containers/build {owner_of(envelopes[0].validator.type)} {self.image}` "
                                    "(docs/backends.md)")
            except docker.errors.APIError as exc:
                return self._failed(run_id, start, f"the engine refused to create the container: {exc}")
            try:
                returncode, timed_out, lines = self._run(container, reader, timeout_seconds)
                container.reload()
                return self._record(container, spec, lines, returncode, timed_out, run_id, timeout_seconds, start)
            except (docker.errors.APIError, EngineLost) as exc:
                return self._failed(run_id, start, f"the engine failed running container {container.short_id}: "
                                    f"{exc}; check the engine's health (docker info) and re-run")
            finally:
                try:
                    container.remove(force=True)
                except docker.errors.NotFound:
                    pass

    def container_spec(self, envelope: InputEnvelope, input_uri: str, run_id: str,
                       timeout_seconds: float) -> dict[str, Any]:
        """Everything ``containers.create`` gets besides the image: env, labels, limits, hardening, mounts."""
        return self._spec([(input_uri, envelope)], {ENV_INPUT: input_uri, ENV_RUN_ID: run_id}, run_id,
                          timeout_seconds)

    def _spec(self, envelopes: list[tuple[str, InputEnvelope]], worker_env: dict[str, str], run_id: str,
              timeout_seconds: float, extra_readable: Sequence[str] = ()) -> dict[str, Any]:
        """The container of one launch, whatever number of envelopes it runs: a ``file://`` store gets the
        folders of every envelope (and ``extra_readable``, the batch manifest) mounted, each once."""
        uris = [*extra_readable]
        for input_uri, envelope in envelopes:
            uris += [input_uri, envelope.context.execution_bundle_uri, envelope.context.expected_output_uri,
                     *(item.uri for item in [*envelope.input_files, *envelope.resource_files])]
        local = all(uri.startswith("file://") for uri in uris)
        env = dict(worker_env)
        if not local and not access.signing_enabled(uris[0]):
            # Opt-out (VALIDIBOT_SIGNED_ACCESS=0): the worker talks to the store with forwarded credentials, which
            # the model in the same container could read. Signed access (the default) forwards nothing.
            env.update({name: os.environ[name] for name in self.forward_env if os.environ.get(name)})
        user = self.user or (WORKER_UID if os.geteuid() == 0 else f"{os.geteuid()}:{os.getegid()}")
        if user.split(":")[0] in ("0", "root"):
            raise ValueError(f"DockerBackend.user={user!r}: the worker never runs as root; use a numeric uid:gid")
        validators = sorted({envelope.validator.type for _, envelope in envelopes})
        return {
            "name": f"validibot-{_safe_name(run_id)}-{uuid.uuid4().hex[:6]}",
            "environment": env,
            "labels": container_labels(run_id=run_id, validator=",".join(validators),
                                       started_at=datetime.now(UTC), timeout_seconds=timeout_seconds),
            "user": user,
            "network_mode": self.network or ("none" if local else "bridge"),
            "mem_limit": self.memory,
            "nano_cpus": int(self.cpus * 1e9),
            "pids_limit": self.pids_limit,
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={self.tmpfs_size}"},
            "cap_drop": ["ALL"],
            # systempaths=unconfined (Docker ≥ 20.10; podman's Docker API takes it too): without it the engine's
            # masked /proc paths make the kernel refuse bubblewrap a fresh /proc, and the model would run in
            # container mode — sharing the container's network and seeing the worker's processes.
            "security_opt": ["no-new-privileges", *(["systempaths=unconfined"] if self.nested_sandbox else [])],
            "mounts": _bind_mounts(envelopes, extra_readable) if local else [],
        }

    def _run(self, container: Any, reader: TeeDockerLogsReader | None,
             timeout_seconds: float) -> tuple[int | None, bool, list[str]]:
        """Start, wait up to the timeout (then stop → kill), and collect the log lines."""
        import requests.exceptions

        container.start()
        follower = None
        if reader is not None:  # stream Pipes messages and log lines while the worker runs
            follower = threading.Thread(target=reader.consume_docker_logs, args=(container,), daemon=True)
            follower.start()
        timed_out = False
        waiting_since = time.monotonic()
        try:
            returncode: int | None = container.wait(timeout=timeout_seconds)["StatusCode"]
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            # docker-py reports its read timeout as either; an error well before the deadline is the engine.
            if time.monotonic() - waiting_since < timeout_seconds * 0.95:
                raise EngineLost(f"lost the connection while waiting: {exc}") from exc
            timed_out = True
            returncode = self._stop_then_kill(container)
        if follower is not None:
            follower.join(timeout=30)
            return returncode, timed_out, reader.lines
        return returncode, timed_out, _split_lines(container.logs(stdout=True, stderr=True))

    def _stop_then_kill(self, container: Any) -> int | None:
        import docker.errors
        import requests.exceptions

        try:
            container.stop(timeout=int(self.stop_grace_seconds))  # SIGTERM, SIGKILL after the grace
            container.reload()
            if container.status == "running":
                container.kill()
            return container.wait(timeout=30)["StatusCode"]
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return None

    def _record(self, container: Any, spec: dict[str, Any], lines: list[str], returncode: int | None,
                timed_out: bool, run_id: str, timeout_seconds: float, start: float) -> LaunchRecord:
        state = container.attrs.get("State", {})
        worker_lines = [line for line in lines if PIPES_MARKER not in line][-LOG_LINES_KEPT:]
        return LaunchRecord(
            backend="docker", launch_id=container.id, returncode=returncode, timed_out=timed_out,
            seconds=round(time.monotonic() - start, 4), log_tail="\n".join(worker_lines), image=self.image,
            details={
                "container_name": container.name,
                "image_id": container.attrs.get("Image") or "",
                "started_at": state.get("StartedAt", ""),
                "finished_at": state.get("FinishedAt", ""),
                "oom_killed": bool(state.get("OOMKilled")),
                "network": spec["network_mode"],
                "user": spec["user"],
                "memory": self.memory,
                "cpus": self.cpus,
                "timeout_seconds": timeout_seconds,
            },
        )

    def _failed(self, run_id: str, start: float, error: str) -> LaunchRecord:
        return LaunchRecord(backend="docker", launch_id=f"run:{run_id}", returncode=None, timed_out=False,
                            seconds=round(time.monotonic() - start, 4), image=self.image, error=error)


# --- helpers ----------------------------------------------------------------------------------------------


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text)[:80]


def _split_lines(raw: bytes | str) -> list[str]:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return text.splitlines()


def _writable_dirs(envelope: InputEnvelope) -> set[Path]:
    return {uri_to_path(envelope.context.execution_bundle_uri),
            uri_to_path(envelope.context.expected_output_uri).parent}


def _bind_mounts(envelopes: list[tuple[str, InputEnvelope]], extra_readable: Sequence[str] = ()) -> list[Any]:
    """Bind only what the envelopes name, at the same paths, each folder once: input folders (and the
    ``extra_readable`` files themselves: a batch's manifest) read-only, the bundles read-write."""
    from docker.types import Mount

    writable = set().union(*(_writable_dirs(envelope) for _, envelope in envelopes))
    readable = {uri_to_path(uri) for uri in extra_readable}
    for input_uri, envelope in envelopes:
        readable.add(uri_to_path(input_uri).parent)
        readable |= {uri_to_path(item.uri).parent for item in [*envelope.input_files, *envelope.resource_files]}
    readable -= writable
    mounts = [Mount(target=str(p), source=str(p), type="bind", read_only=True) for p in sorted(readable)]
    mounts += [Mount(target=str(p), source=str(p), type="bind", read_only=False) for p in sorted(writable)]
    return mounts


def _prepare_bundle(envelope: InputEnvelope, user: str) -> None:
    """Let the worker user write the execution bundle.

    When the control plane is root (the usual Docker host setup) the bundle directory is handed to the
    worker's uid; otherwise the worker runs as the control plane's own uid and already owns it.
    """
    for path in _writable_dirs(envelope):
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            uid, _, gid = user.partition(":")
            _chown_tree(path, int(uid), int(gid or uid))


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for sub in path.rglob("*"):
        os.chown(sub, uid, gid, follow_symlinks=False)


class TeeDockerLogsReader(PipesDockerLogsMessageReader):
    """dagster-docker's log-stream Pipes reader that also keeps every line for the LaunchRecord."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def consume_docker_logs(self, container: Any) -> None:
        # Frames of the log stream are not guaranteed to be whole lines: re-split before handing them on.
        pending = ""
        for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
            pending += chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else str(chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                self._take(line)
        if pending:
            self._take(pending)

    def _take(self, line: str) -> None:
        self.lines.append(line)
        if self._handler is not None:
            extract_message_or_forward_to_stdout(self._handler, line)


@contextlib.contextmanager
def _pipes_session(context: Any) -> Iterator[tuple[dict[str, str], TeeDockerLogsReader | None]]:
    """Open a Dagster Pipes session when launched from a Dagster step; nothing otherwise (CLI, plain calls)."""
    if context is None:
        yield {}, None
        return
    reader = TeeDockerLogsReader()
    with open_pipes_session(context=op_context(context), context_injector=PipesEnvContextInjector(),
                            message_reader=reader) as session:
        yield dict(session.get_bootstrap_env_vars()), reader
