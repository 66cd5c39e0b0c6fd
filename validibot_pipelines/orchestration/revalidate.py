"""Which spec applies to a registered model now, and the record a schedule or backfill re-validates.

The spec's identity (its SHA-256, or ``nospec``) is the data version of the ``<kind>_spec`` observable source
asset that every validator asset depends on, so Dagster marks a model's partitions stale when its spec changes.
Rule: while the model is still in the landing zone, the sidecar ``<model>.validation.yaml`` next to it rules
(deleting the sidecar means "no spec"); once the model left the landing zone, the copy stored at intake does.
"""

from __future__ import annotations

from validibot_pipelines.orchestration.layout import model_spec_uri
from validibot_pipelines.orchestration.models import SPEC_SUFFIX, IntakeLimits, ModelRecord, intake, load_record
from validibot_pipelines.storage import get_store

NO_SPEC = "nospec"


def spec_version(spec_sha256: str | None) -> str:
    """The data version of a model's spec: its SHA-256, or ``nospec``."""
    return spec_sha256 or NO_SPEC


def _sha_if_exists(uri: str) -> str | None:
    store = get_store(uri)
    return store.sha256_and_size(uri)[0] if store.exists(uri) else None


def current_spec(record: ModelRecord, store_uri: str) -> tuple[str | None, str | None]:
    """(URI, SHA-256) of the spec that applies to the model now; (None, None) when it has none."""
    if get_store(record.source_uri).exists(record.source_uri):
        uri = record.source_uri + SPEC_SUFFIX
    elif record.spec is not None:
        uri = model_spec_uri(store_uri, record.partition_key)
    else:
        return None, None
    sha = _sha_if_exists(uri)
    return (uri, sha) if sha else (None, None)


def revalidation_record(store_uri: str, key: str, limits: IntakeLimits | None = None) -> ModelRecord:
    """The model's stored intake record (its current version), re-done from the landing file when the
    applicable spec changed since."""
    record = load_record(store_uri, key)
    spec_uri, spec_sha = current_spec(record, store_uri)
    stored_sha = _sha_if_exists(model_spec_uri(store_uri, key)) if record.spec is not None else None
    if spec_sha == stored_sha:  # also when the model left the landing zone: the stored spec rules then
        return record
    return intake(record.source_uri, store_uri=store_uri, spec_uri=spec_uri, expected_sha256=record.sha256,
                  limits=limits, model_name=record.name or None)
