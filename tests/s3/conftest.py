"""A real S3 endpoint on loopback for tests/s3/: moto in server mode, started once by the
test session (as the throwaway PostgreSQL is), with one bucket, and `S3Faults` in front of
it to see every request and to answer chosen ones with S3's own errors.

The `s3` fixture points the project's default storage at that bucket exactly as
`STORAGE=s3` does (django-storages' S3Storage with `veoproject.storage`'s transfer and
client configs) and empties the bucket after each test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from moto.server import ThreadedMotoServer

from veoproject import storage

BUCKET = "veo-media-test"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "moto-key", "aws_secret_access_key": "moto-secret"}
ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message>"
    "<RequestId>injected-fault</RequestId></Error>"
)


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body_bytes: int  # the object bytes it carried (decoded from aws-chunked framing)

    @property
    def is_upload_part(self) -> bool:
        return self.method == "PUT" and "partNumber" in self.query


@dataclass
class _Fault:
    method: str
    query_key: str | None
    query_value: str | None
    status: int
    code: str
    message: str
    times: int


@dataclass
class S3Faults:
    """WSGI middleware before moto's app: records each request and answers the next ones
    that match a `fail_next` with the S3 error asked for (S3's XML error body)."""

    app: Any
    requests: list[S3Request] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self,
        *,
        method: str,
        query_key: str | None = None,
        query_value: str | None = None,
        status: int = 503,
        code: str = "SlowDown",
        message: str = "Please reduce your request rate.",
        times: int = 1,
    ) -> None:
        """The next `times` requests with `method` (and `query_key` in the query string,
        e.g. "partNumber" for an UploadPart, with `query_value` if given) get this error
        instead of moto's answer."""
        with self._lock:
            self._faults.append(
                _Fault(method, query_key, query_value, status, code, message, times)
            )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def uploaded_parts(self) -> list[S3Request]:
        with self._lock:
            return [r for r in self.requests if r.is_upload_part]

    def _take_fault(self, method: str, query: dict[str, list[str]]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and _matches(fault, query):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def __call__(self, environ: dict, start_response: Any) -> Any:
        method = environ["REQUEST_METHOD"]
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        sent = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or environ.get("CONTENT_LENGTH")
        with self._lock:
            self.requests.append(
                S3Request(method, environ.get("PATH_INFO", ""), query, int(sent or 0))
            )
        fault = self._take_fault(method, query)
        if fault is None:
            return self.app(environ, start_response)
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        body = ERROR_BODY.format(code=fault.code, message=fault.message).encode()
        start_response(
            f"{fault.status} {fault.code}",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]


def _matches(fault: _Fault, query: dict[str, list[str]]) -> bool:
    if fault.query_key is None:
        return True
    values = query.get(fault.query_key)
    return values is not None and (fault.query_value is None or fault.query_value in values)


@dataclass
class MotoS3:
    endpoint_url: str
    client: Any  # boto3's S3 client, to look at the bucket from outside the project
    faults: S3Faults

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=BUCKET)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def head(self, key: str) -> dict:
        return self.client.head_object(Bucket=BUCKET, Key=key)

    def pending_multipart_uploads(self) -> list[str]:
        listed = self.client.list_multipart_uploads(Bucket=BUCKET)
        return [upload["Key"] for upload in listed.get("Uploads", [])]

    def empty(self) -> None:
        for upload in self.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
            self.client.abort_multipart_upload(
                Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for key in self.keys():
            self.client.delete_object(Bucket=BUCKET, Key=key)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 on 127.0.0.1 (a free port), for the whole session, with one bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    # The served app is moto's; the faults switch goes in front of it.
    wsgi_server: Any = server._server
    faults = S3Faults(wsgi_server.app)
    wsgi_server.app = faults
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint_url, region_name=REGION, **CREDENTIALS)
    client.create_bucket(Bucket=BUCKET)
    try:
        yield MotoS3(endpoint_url=endpoint_url, client=client, faults=faults)
    finally:
        server.stop()


@pytest.fixture
def s3(moto_s3: MotoS3, settings) -> Iterator[MotoS3]:
    """The default storage on the moto bucket, configured as `STORAGE=s3` does."""
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_REGION_NAME = REGION
    settings.AWS_S3_ENDPOINT_URL = moto_s3.endpoint_url
    settings.AWS_ACCESS_KEY_ID = CREDENTIALS["aws_access_key_id"]
    settings.AWS_SECRET_ACCESS_KEY = CREDENTIALS["aws_secret_access_key"]
    settings.AWS_DEFAULT_ACL = None
    settings.AWS_QUERYSTRING_AUTH = True
    settings.AWS_QUERYSTRING_EXPIRE = 300
    settings.AWS_S3_CLIENT_CONFIG = storage.client_config()
    settings.AWS_S3_TRANSFER_CONFIG = storage.transfer_config()
    # Last: a new STORAGES makes Django build the default storage again, with the above.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage"},
    }
    moto_s3.faults.reset()
    yield moto_s3
    moto_s3.faults.reset()
    moto_s3.empty()
