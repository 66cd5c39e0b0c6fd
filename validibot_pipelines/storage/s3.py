"""``s3://`` store on boto3. ``AWS_ENDPOINT_URL`` (honoured natively by boto3) points it at moto/MinIO."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

from validibot_pipelines.storage.base import ObjectInfo, ObjectStore
from validibot_pipelines.storage.gcs import split_bucket


class S3Store(ObjectStore):
    scheme = "s3"

    @cached_property
    def client(self):  # noqa: ANN201 - boto3 client type
        import boto3
        from botocore.config import Config

        # botocore's standard retry mode: exponential backoff with jitter on throttling, 5xx and connection errors.
        # A session of its own: boto3's default session keeps the first credentials it resolved for the process.
        return boto3.session.Session().client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))

    def open_read(self, uri: str) -> BinaryIO:
        bucket, key = split_bucket(uri, "s3")
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(uri) from None

    def write_bytes(self, uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, key = split_bucket(uri, "s3")
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def upload_file(self, path: Path, uri: str, content_type: str = "application/octet-stream") -> None:
        bucket, key = split_bucket(uri, "s3")
        self.client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})

    def exists(self, uri: str) -> bool:
        from botocore.exceptions import ClientError

        bucket, key = split_bucket(uri, "s3")
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise

    def list(self, prefix_uri: str) -> Iterator[ObjectInfo]:
        bucket, prefix = split_bucket(prefix_uri, "s3")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue
                yield ObjectInfo(
                    uri=f"s3://{bucket}/{obj['Key']}",
                    size=obj["Size"],
                    updated_ns=int(obj["LastModified"].timestamp() * 1e9),
                )

    def delete(self, uri: str) -> None:
        bucket, key = split_bucket(uri, "s3")
        self.client.delete_object(Bucket=bucket, Key=key)
