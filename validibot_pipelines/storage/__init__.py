"""One URI-addressed object store for ``file://``, ``gs://`` and ``s3://``.

Everything (landing zone, canonical model copies, execution bundles, artifacts) is addressed by URI, so the
same code runs against a local folder, GCS (google-cloud-storage; ``STORAGE_EMULATOR_HOST`` for the emulator)
or S3 (boto3; ``AWS_ENDPOINT_URL`` for moto or MinIO). No ``dagster`` import: workers use this too.
"""

from validibot_pipelines.storage.base import ObjectInfo, ObjectStore, StorageError, join_uri, leaf_name
from validibot_pipelines.storage.registry import get_store, sha256_of_uri

__all__ = ["ObjectInfo", "ObjectStore", "StorageError", "get_store", "join_uri", "leaf_name", "sha256_of_uri"]
