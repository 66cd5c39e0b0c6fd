"""The object-store layout, in one place.

``models/<sha256>/<file name>``      canonical copy of an accepted upload (stored once per checksum)
``models/<sha256>/model.json``       what intake learnt (name, kind, size, source URI, facts)
``models/<sha256>/validation.yaml``  the spec that came with it, if any
``runs/<run_id>/input.json``         input envelope; ``output.json`` next to it; ``artifacts/`` below
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
