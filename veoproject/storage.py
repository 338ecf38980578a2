"""Where uploaded images and copied videos live: MEDIA_ROOT, or with `STORAGE=s3` a private
bucket (django-storages' S3Storage over boto3: AWS, Cloudflare R2, MinIO and the like).

What differs between the two lives here, so callers never ask which storage they have:

- `save_stream` stores bytes that arrive as a stream (the video copied from fal) without
  holding them. On S3 it is a multipart upload (boto3's `upload_fileobj`) of parts of
  PART_BYTES read one after another from the stream: at most PARTS_IN_MEMORY of them are
  in memory, and a failure aborts the upload, so no half-written object stays. Locally
  the bytes go through a temporary file on disk, so a failed copy leaves nothing under
  the final name. The storage's own failures come out as `StorageUnavailable`, an
  OSError: a failed attempt, to be retried.
- `presigned_url` is a URL the bucket answers by itself for a few minutes
  (AWS_QUERYSTRING_EXPIRE), with the response's Content-Type, Content-Disposition and
  Cache-Control fixed by the signature, so they hold whatever the object's metadata says;
  None for local storage (Django or nginx send the bytes).
"""

from __future__ import annotations

import io
import ipaddress
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.core.files import File
from django.core.files.storage import Storage
from django.utils.http import content_disposition_header

if TYPE_CHECKING:  # boto3 is imported where S3 is used, not by every process at start
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

# S3's smallest part is 5 MiB (but the last); boto3's default is 8 MiB.
PART_BYTES = 8 * 1024 * 1024
# Parts read ahead of their upload, and parts uploading at once: the copy's memory.
PARTS_IN_MEMORY = 2
# Tries of one request to the bucket (boto3 retries 5xx, throttling and lost connections).
S3_ATTEMPTS = 3


class StorageUnavailable(OSError):
    """The storage refused a write or did not answer (an S3 error, no connection)."""


def transfer_config() -> TransferConfig:
    """AWS_S3_TRANSFER_CONFIG: multipart above one part, and bounded read-ahead."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=PART_BYTES,
        multipart_chunksize=PART_BYTES,
        max_concurrency=PARTS_IN_MEMORY,
    )
    # s3transfer's own knob (boto3's constructor does not take it; default 10 parts).
    config.max_in_memory_upload_chunks = PARTS_IN_MEMORY
    return config


def client_config(*, addressing_style: str | None = None) -> Config:
    """AWS_S3_CLIENT_CONFIG: signed URLs in SigV4 (the one every S3 speaks), a slow or
    failing bucket answered within seconds and retried a few times by boto3 itself, and
    `addressing_style` (AWS_S3_ADDRESSING_STYLE, which this config replaces). Checksums
    only where S3 requires them: several S3-compatible stores refuse the CRC trailers
    boto3 sends by default since 1.36."""
    from botocore.config import Config

    return Config(
        s3={"addressing_style": addressing_style or "auto"},
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=30,
        retries={"total_max_attempts": S3_ATTEMPTS, "mode": "standard"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


def bucket_origins(endpoint_url: str | None) -> list[str]:
    """The origins presigned URLs point at, for the portal's CSP (media-src): the endpoint
    and its subdomains (virtual-hosted buckets), or AWS's S3 hosts."""
    if not endpoint_url:
        return ["https://*.amazonaws.com"]
    parts = urlsplit(endpoint_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    try:
        ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return [origin, f"{parts.scheme}://*.{parts.netloc}"]
    return [origin]  # an address has no subdomains: path-style only


def is_s3(storage: Storage) -> bool:
    from storages.backends.s3 import S3Storage  # boto3 loads only where S3 is used

    return isinstance(storage, S3Storage)


class _ChunkReader(io.RawIOBase):
    """A readable, unseekable file over an iterator of byte chunks; counts what it gave."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = memoryview(b"")
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.size += count
        return count


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise StorageUnavailable(f"{what}: {exc}") from exc


def save_stream(storage: Storage, name: str, chunks: Iterable[bytes]) -> tuple[str, int]:
    """Store the bytes `chunks` yields under `name` (or the name the storage chooses) and
    return that name and the byte count, never holding the whole stream. An exception the
    stream raises (a size cap, a timeout) passes through unchanged and nothing is stored;
    the storage's own failures raise StorageUnavailable."""
    reader = _ChunkReader(chunks)
    if is_s3(storage):
        # Buffered: boto3 asks for a whole part at a time and takes a short read for the
        # end of the stream.
        with storage_errors("S3 refused the upload"):
            stored = storage.save(name, File(io.BufferedReader(reader, PART_BYTES)))
        return stored, reader.size
    with tempfile.TemporaryFile() as buffer:
        try:
            shutil.copyfileobj(reader, buffer, length=256 * 1024)
            buffer.seek(0)
            return storage.save(name, File(buffer)), reader.size
        except OSError as exc:  # a full or failing disk (the stream's own errors are not)
            raise StorageUnavailable(f"the disk refused the video: {exc}") from exc


def presigned_url(
    storage: Storage,
    name: str,
    *,
    content_type: str,
    filename: str,
    cache_control: str,
    method: str = "GET",
    expires_in: int | None = None,
) -> str | None:
    """A signed URL for `name` that answers `method` (GET or HEAD) with these headers,
    valid `expires_in` seconds (default AWS_QUERYSTRING_EXPIRE); None unless the storage
    is S3. Signing is local: no request to the bucket."""
    if not is_s3(storage):
        return None
    parameters = {
        "ResponseContentType": content_type,
        "ResponseContentDisposition": content_disposition_header(False, filename) or "",
        "ResponseCacheControl": cache_control,
    }
    s3: Any = storage  # S3Storage.url takes more than Storage.url
    with storage_errors("S3 URL not signed"):
        return s3.url(name, parameters=parameters, expire=expires_in, http_method=method)
