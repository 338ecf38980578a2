"""The finished video, copied from the fake fal (the real fal client, over HTTPS) into the
S3 bucket (moto on loopback): streamed in parts, exact bytes, one capture; over the size
cap refused without charging; a failed upload retried without charging twice."""

from __future__ import annotations

import io
import math
import os
import time

import pytest
from django.core.management import call_command

from accounts import ledger
from generations import services
from generations.models import Generation
from generations.services.finishing import MAX_FINISH_FAILURES
from tests.credits import kinds, numbers
from tests.factories import REQUEST_BODY
from tests.s3.conftest import MotoS3
from veoproject import storage

pytestmark = pytest.mark.django_db

VIDEO_BYTES = 2 * storage.PART_BYTES + 4321  # three parts


@pytest.fixture
def video(tmp_path) -> bytes:
    """What the fake fal serves as the finished video."""
    data = b"\x00\x00\x00\x18ftypmp42" + os.urandom(VIDEO_BYTES - 12)
    (tmp_path / "long.mp4").write_bytes(data)
    return data


@pytest.fixture
def fal(real_fal, video, tmp_path):
    return real_fal(queue_seconds=0, run_seconds=0.05, video_path=tmp_path / "long.mp4")


def accepted_and_submitted(user) -> Generation:
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    services.submit(generation_id=generation.pk)
    return generation


def follow(generation: Generation, *, until) -> Generation:
    """Ask fal (staff's "check now") until `until(generation)`: each look at a completed
    job makes one attempt at the copy."""
    deadline = time.monotonic() + 20
    while not until(generation) and time.monotonic() < deadline:
        time.sleep(0.05)
        generation = services.refresh_from_fal(generation=generation)
    assert until(generation), generation.status
    return generation


def upload_starts(s3: MotoS3) -> int:
    """Multipart uploads begun in the bucket: one per copy attempt."""
    return len([r for r in s3.faults.requests if r.method == "POST" and "uploads" in r.query])


def assert_ledger_clean() -> None:
    assert ledger.broken_accounts() == []
    out = io.StringIO()
    call_command("check_ledger", stdout=out)
    assert "ledger OK" in out.getvalue()


def test_the_video_streams_from_fal_into_the_bucket_in_parts(fal, s3: MotoS3, user, video):
    generation = follow(accepted_and_submitted(user), until=lambda g: g.is_final)

    assert generation.status == "succeeded"
    assert generation.video.name == f"private/videos/{user.pk}/{generation.pk}.mp4"
    assert s3.keys() == [generation.video.name]
    assert s3.read(generation.video.name) == video
    assert generation.video_bytes == len(video)
    # A multipart upload, each request to the bucket one part at most: never the whole body.
    parts = s3.faults.uploaded_parts()
    assert len(parts) == math.ceil(len(video) / storage.PART_BYTES) == 3
    assert max(request.body_bytes for request in s3.faults.requests) <= storage.PART_BYTES
    assert kinds(generation) == ["hold", "capture"]
    assert numbers(user) == (680, 0)
    assert_ledger_clean()


def test_a_video_over_the_cap_is_refused_and_nothing_is_charged(fal, s3: MotoS3, settings, user):
    settings.VIDEO_MAX_BYTES = storage.PART_BYTES

    generation = follow(accepted_and_submitted(user), until=lambda g: g.is_final)

    assert (generation.status, generation.error_code) == ("failed", "storage_error")
    assert "size limit" in generation.error_message
    assert s3.keys() == [] and s3.pending_multipart_uploads() == []
    assert kinds(generation) == ["hold", "release"]
    assert numbers(user) == (1000, 0)
    assert_ledger_clean()


def test_a_failed_upload_is_retried_without_charging_twice(fal, s3: MotoS3, user, video):
    # The bucket refuses the video's first part as often as boto3 tries it.
    s3.faults.fail_next(
        method="PUT", query_key="partNumber", query_value="1", times=storage.S3_ATTEMPTS
    )
    generation = accepted_and_submitted(user)

    generation = follow(generation, until=lambda g: upload_starts(s3) == 1 and g.next_poll_at)

    assert generation.status in Generation.IN_FLIGHT
    assert generation.finish_failures == 0  # our storage's failure, not the video's
    assert not generation.video
    assert s3.keys() == [] and s3.pending_multipart_uploads() == []  # the upload aborted
    assert kinds(generation) == ["hold"]
    assert numbers(user) == (1000, 320)

    generation = follow(generation, until=lambda g: g.is_final)

    assert generation.status == "succeeded"
    assert s3.read(generation.video.name) == video
    assert upload_starts(s3) == 2  # one upload refused, one completed
    services.finish(generation_id=generation.pk)  # a late duplicate changes nothing
    assert kinds(generation) == ["hold", "capture"]
    assert numbers(user) == (680, 0)
    assert_ledger_clean()


def test_a_bucket_down_for_longer_than_the_copy_attempts_never_fails_a_billed_video(
    fal, s3: MotoS3, user, video
):
    # Our storage is down (an S3 outage, a full disk): our problem, not the video's. fal
    # has billed us for it; the copy waits for the storage, it is not failed and refunded.
    attempts = MAX_FINISH_FAILURES + 2
    s3.faults.fail_next(
        method="PUT", query_key="partNumber", query_value="1", times=attempts * storage.S3_ATTEMPTS
    )
    generation = accepted_and_submitted(user)

    generation = follow(generation, until=lambda g: upload_starts(s3) >= attempts)

    assert generation.status in Generation.IN_FLIGHT, generation.error_message
    assert generation.finish_failures == 0  # not counted against the video
    assert kinds(generation) == ["hold"]
    generation = follow(generation, until=lambda g: g.is_final)
    assert generation.status == "succeeded"
    assert s3.read(generation.video.name) == video
    assert kinds(generation) == ["hold", "capture"]
    assert_ledger_clean()
