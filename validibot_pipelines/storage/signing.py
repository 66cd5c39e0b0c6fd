"""Sign one URL for one object and one method, with the store's own client library (control plane only).

GCS: google-cloud-storage's ``Blob.generate_signed_url(version="v4")``. The signer is a service-account key
(``VALIDIBOT_GCS_SIGNING_KEY_FILE``, else ``GOOGLE_APPLICATION_CREDENTIALS`` when it is a key file) or, on Cloud
Run / GCE where credentials carry no key, the ambient service account through the IAM ``signBlob`` API
(``service_account_email`` + ``access_token``; the account needs ``iam.serviceAccounts.signBlob`` on itself).
S3: boto3's ``generate_presigned_url`` with SigV4. ``VALIDIBOT_SIGNED_URL_ENDPOINT`` puts another host in the
URLs than the one the control plane talks to (a gateway, or the emulator's address as a container sees it).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from functools import cache
from typing import Any, Literal

from validibot_pipelines.storage.base import StorageError
from validibot_pipelines.storage.gcs import split_bucket

ENV_GCS_KEY = "VALIDIBOT_GCS_SIGNING_KEY_FILE"
ENV_ENDPOINT = "VALIDIBOT_SIGNED_URL_ENDPOINT"
MAX_TTL_SECONDS = 7 * 24 * 3600  # both clouds refuse longer V4 signatures

Method = Literal["GET", "PUT"]


def can_sign(uri: str) -> bool:
    return uri.startswith(("gs://", "s3://"))


def sign_url(uri: str, method: Method, ttl_seconds: int) -> str:
    ttl = max(1, min(int(ttl_seconds), MAX_TTL_SECONDS))
    if uri.startswith("gs://"):
        return _sign_gcs(uri, method, ttl)
    if uri.startswith("s3://"):
        return _sign_s3(uri, method, ttl)
    raise StorageError(f"{uri}: only gs:// and s3:// objects get signed URLs")


def signer_identity(uri: str) -> str:
    """Who signs for ``uri``'s store: the service account's email, or the AWS access key id."""
    if uri.startswith("gs://"):
        creds, email, _ = _gcs_signer()
        return email or getattr(creds, "service_account_email", "") or "unknown"
    creds = _s3_credentials()
    return f"aws-access-key:{creds.access_key}" if creds else "unknown"


# --- GCS ------------------------------------------------------------------------------------------------------


@cache
def _gcs_signer() -> tuple[Any, str, bool]:
    """(credentials, service account email, uses IAM signBlob) — resolved once per process."""
    key_file = os.environ.get(ENV_GCS_KEY) or _key_file(os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
    if key_file:
        from google.oauth2 import service_account

        creds = service_account.Credentials.from_service_account_file(key_file)
        return creds, creds.service_account_email, False
    import google.auth
    import google.auth.transport.requests

    try:
        creds, _ = google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise StorageError(f"cannot sign gs:// URLs: no credentials ({exc}); set {ENV_GCS_KEY} to a service "
                           "account key file or run with a service account (Cloud Run, GCE)") from None
    creds.refresh(google.auth.transport.requests.Request())
    return creds, getattr(creds, "service_account_email", ""), not hasattr(creds, "sign_bytes")


def _key_file(path: str | None) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path) as fh:
            return path if json.load(fh).get("type") == "service_account" else None
    except (OSError, ValueError):
        return None


def _sign_gcs(uri: str, method: Method, ttl: int) -> str:
    from validibot_pipelines.storage.gcs import GCSStore

    bucket, key = split_bucket(uri, "gs")
    creds, email, iam = _gcs_signer()
    blob = GCSStore().client.bucket(bucket).blob(key)
    endpoint = os.environ.get(ENV_ENDPOINT) or _emulator_endpoint() or "https://storage.googleapis.com"
    kwargs: dict[str, Any] = {"version": "v4", "expiration": timedelta(seconds=ttl), "method": method,
                              "api_access_endpoint": endpoint}
    if iam:
        kwargs.update(service_account_email=email, access_token=creds.token)
    else:
        kwargs["credentials"] = creds
    return blob.generate_signed_url(**kwargs)


def _emulator_endpoint() -> str | None:
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if not host:
        return None
    return host if "://" in host else f"http://{host}"


# --- S3 -------------------------------------------------------------------------------------------------------


@cache
def _s3_signer() -> Any:
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get(ENV_ENDPOINT) or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.session.Session().client("s3", endpoint_url=endpoint,
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def _s3_credentials() -> Any:
    return _s3_signer()._request_signer._credentials  # noqa: SLF001 - the credentials boto3 resolved and signs with


def _sign_s3(uri: str, method: Method, ttl: int) -> str:
    bucket, key = split_bucket(uri, "s3")
    operation = "get_object" if method == "GET" else "put_object"
    return _s3_signer().generate_presigned_url(operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl)


def reset_signers() -> None:
    """Forget cached signers (tests change credentials and endpoints between cases)."""
    _gcs_signer.cache_clear()
    _s3_signer.cache_clear()
