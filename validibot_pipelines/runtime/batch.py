"""One worker launch, many input envelopes: the batch side of the container contract.

``VALIDIBOT_BATCH_URI`` names a manifest (``{"inputs": [input envelope URI, ...]}``) that the control plane
wrote next to the bundles (:func:`write_manifest`). The worker runs every envelope exactly as it would run one
(:func:`~validibot_pipelines.runtime.entrypoint.execute`: its own bundle, output envelope, idempotent replay),
so a batch gives each model the result a single launch would. One envelope's trouble stays its own: a model
that crashes, hangs or eats memory does so in its own sandboxed child and gets its own ``failed_validation``;
an envelope the worker cannot even read is reported and the rest still run.

Envelopes run on ``VALIDIBOT_WORKER_LANES`` lanes at once (default: the CPUs this worker may use), each lane
with its own warm sandbox (:mod:`validibot_pipelines.runtime.sandbox.warm`). On Cloud Run Jobs each task takes
its shard of the manifest by ``CLOUD_RUN_TASK_INDEX`` / ``CLOUD_RUN_TASK_COUNT``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from validibot_pipelines.storage import StorageError, get_store, join_uri
from validibot_pipelines.storage.grant import without_query

ENV_BATCH = "VALIDIBOT_BATCH_URI"
ENV_LANES = "VALIDIBOT_WORKER_LANES"
ENV_TASK_INDEX = "CLOUD_RUN_TASK_INDEX"
ENV_TASK_COUNT = "CLOUD_RUN_TASK_COUNT"


class BatchManifestError(ValueError):
    """The manifest is missing or is not a list of input envelope URIs: the worker cannot honour the contract."""


def store_of(input_uri: str) -> str:
    """The store an input envelope lives in (``<store>/runs/<run id>/input.json``)."""
    return input_uri.rstrip("/").rsplit("/", 3)[0]


def manifest_uri(input_uris: list[str], batch_id: str) -> str:
    return join_uri(store_of(input_uris[0]), "batches", f"{batch_id}.json")


def write_manifest(input_uris: list[str], batch_id: str, references: list[str] | None = None) -> str:
    """Write the batch's manifest into the store (beside its bundles) and return its URI.

    ``references`` are what the worker reads instead of each envelope URI (signed grant URLs,
    ``orchestration/access.py``); the manifest's place is decided by the canonical URIs either way.
    """
    uri = manifest_uri(input_uris, batch_id)
    get_store(uri).write_bytes(uri, json.dumps({"inputs": references or input_uris}).encode(), "application/json")
    return uri


def run_id_of(uri: str) -> str:
    """The run id of an envelope's URI (``…/runs/<run id>/input.json`` or its grant), a signed URL included."""
    from urllib.parse import urlsplit

    return urlsplit(uri).path.rstrip("/").rsplit("/", 2)[-2]


def read_manifest(uri: str) -> list[str]:
    try:
        data = json.loads(get_store(uri).read_bytes(uri))
    except FileNotFoundError:
        raise BatchManifestError(f"batch manifest {without_query(uri)} does not exist; check {ENV_BATCH}") from None
    except StorageError as exc:
        raise BatchManifestError(f"batch manifest: {exc}") from None
    except ValueError as exc:
        raise BatchManifestError(f"batch manifest {uri} is not JSON ({exc})") from None
    inputs = data.get("inputs") if isinstance(data, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(u, str) and u for u in inputs):
        raise BatchManifestError(f"batch manifest {uri} must be {{\"inputs\": [\"<input envelope URI>\", ...]}}")
    return inputs


def shard(inputs: list[str], env: dict[str, str] | None = None) -> list[str]:
    """This task's share of the manifest on Cloud Run Jobs (task ``i`` of ``n`` takes every ``n``-th from
    ``i``); everything elsewhere."""
    env = os.environ if env is None else env
    try:
        index, count = int(env.get(ENV_TASK_INDEX, "0")), int(env.get(ENV_TASK_COUNT, "1"))
    except ValueError:
        index, count = 0, 1
    if count <= 1 or not 0 <= index < count:
        return list(inputs)
    return inputs[index::count]


def lanes(n: int, env: dict[str, str] | None = None) -> int:
    """How many envelopes run at once: ``VALIDIBOT_WORKER_LANES``, else the CPUs this process may use — but
    one in container mode (``VALIDIBOT_SANDBOX=container``): there the container is the sandbox and a model's
    process runs as the worker's user beside the worker's folders, so two models at once could see each
    other's staged files; one after the other, each model's files are gone before the next one starts."""
    env = os.environ if env is None else env
    try:
        wanted = int(env.get(ENV_LANES, "0"))
    except ValueError:
        wanted = 0
    if not wanted and env.get("VALIDIBOT_SANDBOX", "").strip().lower() == "container":
        wanted = 1
    return max(1, min(n, wanted or len(os.sched_getaffinity(0))))


_running: list[int] = []  # sizes of the batches this process is running (a session runs one at a time)


def running_batch_size() -> int:
    """How many envelopes the batch this worker process is running holds (0: none). Worker code that pays a
    fixed cost once to save it on every model (the FMI plot helper) starts only for a batch worth it."""
    return max(_running, default=0)


@dataclass
class Outcome:
    input_uri: str
    status: str = ""  # the output envelope's status, or "" when the worker could not run the envelope
    error: str = ""


def execute_batch(inputs: list[str], run_one: Callable[[str], str], log: Callable[[str], None],
                  n_lanes: int | None = None, pool: list | None = None) -> list[Outcome]:
    """Run ``run_one(input_uri) -> status`` for every envelope on a few lanes; one envelope's exception is its
    own outcome (the others still run). Each lane thread keeps its warm sandbox for the envelopes it takes;
    with ``pool`` (a worker session's lanes, ``runtime/session.py``) the lanes and their sandboxes outlive the
    batch, otherwise they are stopped at its end."""
    from validibot_pipelines.runtime.sandbox import warm

    n_lanes = n_lanes or lanes(len(inputs))
    if pool:
        n_lanes = min(n_lanes, len(pool))
    outcomes = [Outcome(uri) for uri in inputs]
    pending = iter(list(enumerate(inputs)))
    lock = threading.Lock()

    def lane(number: int) -> None:
        with warm.lane() if not pool else warm.using(pool[number]):
            while True:
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                index, uri = item
                try:
                    outcomes[index].status = run_one(uri)
                except Exception as exc:  # noqa: BLE001 - reported per envelope; the batch goes on
                    outcomes[index].error = f"{type(exc).__name__}: {exc}"
                    log(f"{uri}: {outcomes[index].error}")

    _running.append(len(inputs))
    try:
        with ThreadPoolExecutor(n_lanes, thread_name_prefix="validibot-lane") as threads:
            for future in [threads.submit(lane, number) for number in range(n_lanes)]:
                future.result()
    finally:
        _running.remove(len(inputs))
    return outcomes
