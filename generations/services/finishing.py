"""Finishing: copy the video from fal into our storage, then capture."""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from uuid import UUID

import httpx
from django.conf import settings
from django.core.files import File
from django.db.models import Q
from django.utils import timezone

from generations.models import Generation
from generations.services.settlement import _succeed, fail
from generations.services.submission import _backoff

logger = logging.getLogger(__name__)


FINISH_LEASE = timedelta(seconds=120)  # one worker downloads the video at a time
MAX_FINISH_FAILURES = 5


class VideoTooLarge(Exception):
    pass


def _download(url: str, destination) -> int:
    """Stream fal's video to `destination`, refusing more than VIDEO_MAX_BYTES."""
    from generations.simulated import SAMPLE_VIDEO, SIMULATED_VIDEO_URL

    cap = settings.VIDEO_MAX_BYTES
    if url == SIMULATED_VIDEO_URL and settings.FAL_SIMULATED:
        data = SAMPLE_VIDEO.read_bytes()
        destination.write(data)
        return len(data)
    if not url.startswith("https://"):
        raise ValueError("fal's video URL is not https")
    size = 0
    timeout = httpx.Timeout(30.0, connect=10.0)
    with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
        response.raise_for_status()
        declared = int(response.headers.get("content-length") or 0)
        if declared > cap:
            raise VideoTooLarge(f"The video is {declared} bytes (limit {cap}).")
        for chunk in response.iter_bytes(chunk_size=256 * 1024):
            size += len(chunk)
            if size > cap:
                raise VideoTooLarge(f"The video is over the limit of {cap} bytes.")
            destination.write(chunk)
    return size


def finish(*, generation_id: UUID) -> None:
    """Copy the finished video into our storage, then succeed and capture. One worker at a
    time (a lease); a failed copy is retried by the sweep without charging again."""
    now = timezone.now()
    claimed = (
        Generation.objects.filter(pk=generation_id, status__in=Generation.IN_FLIGHT)
        .exclude(fal_video_url="")
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + FINISH_LEASE)
    )
    if not claimed:
        return
    generation = Generation.objects.get(pk=generation_id)
    try:
        with tempfile.TemporaryFile() as buffer:
            size = _download(generation.fal_video_url, buffer)
            buffer.seek(0)
            name = generation.video.storage.save(
                generation.video.field.generate_filename(generation, "video.mp4"), File(buffer)
            )
    except VideoTooLarge as exc:
        fail(generation_id=generation.pk, code="storage_error", message=str(exc))
        return
    except (httpx.HTTPError, OSError, ValueError) as exc:
        _finish_failed(generation, exc)
        return
    if not _succeed(generation=generation, video_name=name, video_bytes=size):
        generation.video.storage.delete(name)  # canceled or settled meanwhile


def _finish_failed(generation: Generation, exc: Exception) -> None:
    failures = generation.finish_failures + 1
    logger.warning(
        "event=video_copy_failed generation=%s failures=%s reason=%r", generation.pk, failures, exc
    )
    if failures >= MAX_FINISH_FAILURES:
        fail(
            generation_id=generation.pk,
            code="storage_error",
            message=f"The video could not be copied from fal ({exc.__class__.__name__}).",
        )
        return
    Generation.objects.filter(pk=generation.pk, status__in=Generation.IN_FLIGHT).update(
        finish_failures=failures,
        lease_until=None,
        next_poll_at=timezone.now() + _backoff(failures, base=5),
    )
