"""The object-store layout, in one place.

``models/<sha256>/<file name>``      canonical copy of an accepted upload (stored once per checksum: the same
                                    bytes under two names share it)
``catalog/<model>.json``            what intake learnt about the model's current version (its name — the
                                    partition key —, checksum, kind, size, source URI, facts, spec)
``catalog/<model>.validation.yaml`` the spec that came with it, if any
``results/<identity>.json``         which bundle holds the verdict for an input envelope's identity (replay)
``runs/<run_id>/input.json``         input envelope; ``output.json`` next to it; ``artifacts/`` below
``launches/<run_id>.json``          marker of an asynchronous launch (Cloud Run) not yet collected
"""

from __future__ import annotations

from validibot_pipelines.orchestration.names import store_path
from validibot_pipelines.storage import join_uri


def model_dir(store_uri: str, sha256: str) -> str:
    return join_uri(store_uri, "models", sha256)


def model_manifest_uri(store_uri: str, key: str) -> str:
    """The intake record of the model whose partition key is ``key`` (see ``orchestration/names.py``)."""
    return join_uri(store_uri, "catalog", store_path(key) + ".json")


def model_spec_uri(store_uri: str, key: str) -> str:
    return join_uri(store_uri, "catalog", store_path(key) + ".validation.yaml")


def result_index_uri(store_uri: str, identity: str) -> str:
    return join_uri(store_uri, "results", f"{identity}.json")


def bundle_uri(store_uri: str, run_id: str) -> str:
    return join_uri(store_uri, "runs", run_id)


LAUNCHES_DIR = "launches"


def launch_marker_uri(bundle: str) -> str:
    """The ``launches/<run_id>.json`` marker of the bundle ``<store>/runs/<run_id>`` (see sensors/outputs.py)."""
    runs, run_id = bundle.rstrip("/").rsplit("/", 1)
    store, folder = runs.rsplit("/", 1)
    if folder != "runs":
        raise ValueError(f"{bundle} is not an execution bundle (<store>/runs/<run_id>)")
    return join_uri(store, LAUNCHES_DIR, f"{run_id}.json")
