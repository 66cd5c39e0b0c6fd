"""A store front that enforces signed URLs the way GCS and S3 do, for tests of least privilege.

Why it exists: neither emulator here checks a signed URL. gcp-storage-emulator ignores the query string;
moto, with IAM enforcement on (``INITIAL_NO_AUTH_ACTION_COUNT``), verifies header-signed requests but fails
with HTTP 500 on every presigned one (it reads an ``Authorization`` header that query-signed requests lack).
So the tests put this gateway between the worker and the emulator: it recomputes each URL's signature with the
clouds' own signing code — botocore's ``S3SigV4QueryAuth`` for S3 and google-cloud-storage's
``generate_signed_url_v4`` (RSA PKCS#1 v1.5 is deterministic, so re-signing the same request with the same key
and timestamp must give the same signature) — enforces ``X-Amz-Expires`` / ``X-Goog-Expires``, and only then
forwards the request: to moto with the control plane's credentials (moto enforcing IAM behind it), or to the
GCS emulator as is. Anything unsigned, re-targeted, re-methoded or expired gets the cloud's own error.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _expiry(stamp: str, seconds: str) -> datetime:
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) + timedelta(seconds=int(seconds))


def verify_s3(method: str, url: str, secrets: dict[str, str], region: str = "us-east-1") -> None:
    """Raise :class:`Refused` unless ``url`` is a valid, unexpired SigV4 presigned URL for ``method``."""
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or "X-Amz-Signature" not in query:
        raise Refused(403, "AccessDenied", "Anonymous access is forbidden for this operation")
    key_id = query.get("X-Amz-Credential", "").split("/")[0]
    if key_id not in secrets:
        raise Refused(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
    if datetime.now(UTC) > _expiry(query["X-Amz-Date"], query["X-Amz-Expires"]):
        raise Refused(403, "AccessDenied", "Request has expired")
    signature = query.pop("X-Amz-Signature")
    unsigned = parts._replace(query=urlencode(query)).geturl()
    request = AWSRequest(method=method, url=unsigned, headers={})
    request.context["timestamp"] = query["X-Amz-Date"]
    auth = S3SigV4QueryAuth(Credentials(key_id, secrets[key_id]), "s3", region, expires=int(query["X-Amz-Expires"]))
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if expected != signature:
        raise Refused(403, "SignatureDoesNotMatch",
                      "The request signature we calculated does not match the signature you provided.")


def verify_gcs(method: str, url: str, credentials: Any) -> None:
    """Raise :class:`Refused` unless ``url`` is a valid, unexpired V4 signed URL for ``method``."""
    from google.cloud.storage._signing import generate_signed_url_v4

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if query.get("X-Goog-Algorithm") != "GOOG4-RSA-SHA256" or "X-Goog-Signature" not in query:
        raise Refused(401, "AccessDenied", "Anonymous caller does not have storage.objects access.")
    if query.get("X-Goog-Credential", "").split("/")[0] != credentials.service_account_email:
        raise Refused(403, "SignatureDoesNotMatch", "unknown signer")
    if datetime.now(UTC) > _expiry(query["X-Goog-Date"], query["X-Goog-Expires"]):
        raise Refused(400, "ExpiredToken", "The provided token has expired. Request has expired.")
    stamp = datetime.strptime(query["X-Goog-Date"], "%Y%m%dT%H%M%SZ")
    again = generate_signed_url_v4(credentials, resource=parts.path, expiration=int(query["X-Goog-Expires"]),
                                   api_access_endpoint=f"{parts.scheme}://{parts.netloc}", method=method,
                                   _request_timestamp=stamp.strftime("%Y%m%dT%H%M%SZ"))
    expected = dict(parse_qsl(urlsplit(again).query))["X-Goog-Signature"]
    if expected != query["X-Goog-Signature"]:
        raise Refused(403, "SignatureDoesNotMatch",
                      "The request signature we calculated does not match the signature you provided.")


@contextlib.contextmanager
def signing_gateway(kind: str, upstream: str, *, secrets: dict[str, str] | None = None,
                    credentials: Any = None, upstream_s3_client: Any = None) -> Iterator[dict[str, Any]]:
    """Serve the gateway on a free loopback port; yields ``{"url": ..., "log": [(method, path, status)]}``."""
    seen: list[tuple[str, str, int]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str = "application/xml") -> None:
            seen.append((self.command, self.path.split("?", 1)[0], status))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            url = f"http://{self.headers['Host']}{self.path}"
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                if kind == "s3":
                    verify_s3(self.command, url, secrets or {})
                else:
                    verify_gcs(self.command, url, credentials)
            except Refused as exc:
                xml = f"<Error><Code>{exc.code}</Code><Message>{exc.message}</Message></Error>".encode()
                self._answer(exc.status, xml)
                return
            status, data = (self._forward_s3 if kind == "s3" else self._forward_gcs)(body)
            self._answer(status, data, "application/octet-stream")

        def _forward_s3(self, body: bytes) -> tuple[int, bytes]:
            bucket, _, key = self.path.split("?", 1)[0].lstrip("/").partition("/")
            from urllib.parse import unquote

            key = unquote(key)
            client = upstream_s3_client
            try:
                if self.command == "GET":
                    return 200, client.get_object(Bucket=bucket, Key=key)["Body"].read()
                if self.command == "PUT":
                    client.put_object(Bucket=bucket, Key=key, Body=body)
                    return 200, b""
                return 405, b"<Error><Code>MethodNotAllowed</Code></Error>"
            except client.exceptions.NoSuchKey:
                return 404, b"<Error><Code>NoSuchKey</Code></Error>"

        def _forward_gcs(self, body: bytes) -> tuple[int, bytes]:
            request = urllib.request.Request(upstream + self.path.split("?", 1)[0], data=body or None,
                                             method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the test emulator
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._handle()

        def do_PUT(self) -> None:  # noqa: N802
            self._handle()

        def do_POST(self) -> None:  # noqa: N802
            self._answer(405, b"<Error><Code>MethodNotAllowed</Code></Error>")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle()

        def do_HEAD(self) -> None:  # noqa: N802
            self._handle()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "log": seen}
    finally:
        server.shutdown()
        server.server_close()
