"""`veoproject.storage.save_stream` against a real S3 endpoint (moto on loopback): a stream
longer than a part goes up as a multipart upload, one part at a time; a stream that fails
midway, or a bucket that refuses, leaves nothing behind."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import pytest
from django.core.files.storage import default_storage

from tests.s3.conftest import MotoS3
from veoproject import storage
from veoproject.public_urls import ResponseTooLarge

CHUNK = 256 * 1024  # what the copy from fal reads at a time


def chunks_of(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


def test_a_long_stream_is_uploaded_in_parts_never_whole(s3: MotoS3):
    data = os.urandom(2 * storage.PART_BYTES + 12345)

    name, size = storage.save_stream(default_storage, "private/videos/a/b.mp4", chunks_of(data))

    assert (name, size) == ("private/videos/a/b.mp4", len(data))
    assert s3.read(name) == data
    assert s3.head(name)["ContentType"] == "video/mp4"
    parts = s3.faults.uploaded_parts()
    assert len(parts) == math.ceil(len(data) / storage.PART_BYTES) == 3
    # No request to the bucket carried more than one part of the stream.
    assert max(request.body_bytes for request in s3.faults.requests) <= storage.PART_BYTES
    assert s3.pending_multipart_uploads() == []


def test_a_short_stream_is_one_put(s3: MotoS3):
    data = os.urandom(300_000)

    name, size = storage.save_stream(default_storage, "private/videos/a/c.mp4", chunks_of(data))

    assert s3.read(name) == data and size == len(data)
    assert s3.faults.uploaded_parts() == []


def test_a_stream_that_fails_midway_leaves_nothing(s3: MotoS3):
    def over_the_cap() -> Iterator[bytes]:
        # Past PARTS_IN_MEMORY parts read, the first must have been uploaded.
        yield from chunks_of(os.urandom((storage.PARTS_IN_MEMORY + 2) * storage.PART_BYTES))
        raise ResponseTooLarge("over the limit")

    with pytest.raises(ResponseTooLarge):
        storage.save_stream(default_storage, "private/videos/a/d.mp4", over_the_cap())

    assert len(s3.faults.uploaded_parts()) >= 1  # the upload had begun
    assert s3.keys() == []
    assert s3.pending_multipart_uploads() == []  # and was aborted


def test_a_refusing_bucket_is_storage_unavailable_and_leaves_nothing(s3: MotoS3):
    # The first part refused as often as boto3 tries it.
    s3.faults.fail_next(
        method="PUT", query_key="partNumber", query_value="1", times=storage.S3_ATTEMPTS
    )

    with pytest.raises(storage.StorageUnavailable) as refused:
        storage.save_stream(
            default_storage,
            "private/videos/a/e.mp4",
            chunks_of(os.urandom(2 * storage.PART_BYTES)),
        )

    assert isinstance(refused.value, OSError)
    assert s3.keys() == []
    assert s3.pending_multipart_uploads() == []


def test_one_refusal_is_retried_by_boto3_itself(s3: MotoS3):
    s3.faults.fail_next(method="PUT", query_key="partNumber", status=500, code="InternalError")
    data = os.urandom(storage.PART_BYTES + 1)

    name, _ = storage.save_stream(default_storage, "private/videos/a/f.mp4", chunks_of(data))

    assert s3.read(name) == data
    assert len(s3.faults.uploaded_parts()) == 3  # two parts, one of them sent twice


def test_local_storage_keeps_nothing_of_a_failed_stream(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path

    def failing() -> Iterator[bytes]:
        yield b"x" * CHUNK
        raise ResponseTooLarge("over the limit")

    with pytest.raises(ResponseTooLarge):
        storage.save_stream(default_storage, "private/videos/a/g.mp4", failing())

    assert list(tmp_path.rglob("*.mp4")) == []
