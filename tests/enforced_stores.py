"""Stores that refuse what the real clouds refuse, for the least-privilege tests.

* :func:`enforced_s3` — a moto server with IAM enforcement on (``INITIAL_NO_AUTH_ACTION_COUNT``: after the
  first three calls, which create the control plane's IAM user and its policy, every request must carry a valid
  SigV4 ``Authorization`` of a known user allowed by its policy; anonymous requests get 403) behind the
  signing gateway (``tests/signing_gateway.py``) for presigned URLs, which moto cannot check itself.
* :func:`gcs_gateway` — the signing gateway in front of gcp-storage-emulator (which checks nothing), verifying
  the V4 signatures made with the test's service-account key.

Both point the control plane at them through the environment (``monkeypatch``) and clear the cached clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.emulators import moto_s3
from tests.signing_gateway import signing_gateway
from validibot_pipelines.storage.registry import _store_for
from validibot_pipelines.storage.signing import ENV_ENDPOINT, reset_signers

ALL_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def _reset() -> None:
    _store_for.cache_clear()
    reset_signers()


@contextlib.contextmanager
def enforced_s3(mp: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Yield ``{"bucket": "s3://…", "moto": url, "gateway": {...}, "client": boto3 client of the control plane}``."""
    import boto3

    mp.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "3")  # read by moto_server at start
    with moto_s3() as moto:
        mp.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
        plain = {"endpoint_url": moto, "region_name": "us-east-1"}
        iam = boto3.client("iam", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap", **plain)
        iam.create_user(UserName="control-plane")
        key = iam.create_access_key(UserName="control-plane")["AccessKey"]
        iam.put_user_policy(UserName="control-plane", PolicyName="store", PolicyDocument=json.dumps(ALL_S3))
        client = boto3.client("s3", aws_access_key_id=key["AccessKeyId"],
                              aws_secret_access_key=key["SecretAccessKey"], **plain)
        bucket = f"validibot-enforced-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        with signing_gateway("s3", moto, secrets={key["AccessKeyId"]: key["SecretAccessKey"]},
                             upstream_s3_client=client) as gateway:
            mp.setenv("AWS_ENDPOINT_URL", moto)
            mp.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
            mp.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            mp.setenv(ENV_ENDPOINT, gateway["url"])
            _reset()
            try:
                yield {"bucket": f"s3://{bucket}", "name": bucket, "moto": moto, "gateway": gateway,
                       "client": client, "signer": f"aws-access-key:{key['AccessKeyId']}"}
            finally:
                _reset()


@contextlib.contextmanager
def gcs_gateway(mp: pytest.MonkeyPatch, emulator: str) -> Iterator[dict[str, Any]]:
    """The gateway before the emulator; signed URLs point at it. Yields ``{"url", "log", "credentials"}``."""
    from google.oauth2 import service_account

    credentials = service_account.Credentials.from_service_account_file(os.environ["VALIDIBOT_GCS_SIGNING_KEY_FILE"])
    with signing_gateway("gcs", emulator, credentials=credentials) as gateway:
        mp.setenv(ENV_ENDPOINT, gateway["url"])
        _reset()
        try:
            yield {**gateway, "credentials": credentials, "signer": credentials.service_account_email}
        finally:
            _reset()
