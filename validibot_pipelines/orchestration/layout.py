"""The object-store layout, in one place.

``models/<sha256>/<file name>``      canonical copy of an accepted upload (stored once per checksum)
``models/<sha256>/model.json``       what intake learnt (name, kind, size, source URI, facts)
``models/<sha256>/validation.yaml``  the spec that came with it, if any
``runs/<run_id>/input.json``         input envelope; ``output.json`` next to it; ``artifacts/`` below
``launches/<run_id>.json``          marker of an asynchronous launch (Cloud Run) not yet collected
"""

from __future__ import annotations

from validibot_pipelines.storage import join_uri


def model_dir(store_uri: str, sha256: str) -> str:
    return join_uri(store_uri, "models", sha256)


def model_manifest_uri(store_uri: str, sha256: str) -> str:
    return join_uri(model_dir(store_uri, sha256), "model.json")


def model_spec_uri(store_uri: str, sha256: str) -> str:
    return join_uri(model_dir(store_uri, sha256), "validation.yaml")


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
