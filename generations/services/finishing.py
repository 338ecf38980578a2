"""Finishing: copy the video from fal into our storage, then capture."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from uuid import UUID

import httpx
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from generations import leases
from generations.models import Generation
from generations.services.settlement import fail, succeed
from veoproject import public_urls, storage
from veoproject.backoff import backoff

logger = logging.getLogger(__name__)


MAX_FINISH_FAILURES = 5
# How long a copy waits when our own storage refused it (not counted as a failure).
STORAGE_RETRY = timedelta(seconds=30)


# Well below the django-q2 task timeout (90 s): connect, redirects and every read of the
# copy together, so a server trickling bytes cannot hold a worker.
VIDEO_COPY_DEADLINE_SECONDS = 60.0
VIDEO_COPY_MAX_REDIRECTS = 3
VIDEO_REFUSED_MESSAGE = (
    "The finished video could not be copied from fal. Nothing was charged; please try again."
)


@contextmanager
def _video_stream(url: str) -> Iterator[Iterable[bytes]]:
    """fal's video as chunks read as they are stored: https only, from `FAL_MEDIA_HOSTS`
    only, each connection and redirect checked by the one public-address rule, under one
    deadline and VIDEO_MAX_BYTES. Raises UrlRefused, ResponseTooLarge, or httpx's errors."""
    from generations.simulated import SAMPLE_VIDEO, SIMULATED_VIDEO_URL

    if url == SIMULATED_VIDEO_URL and settings.FAL_SIMULATED:
        yield [SAMPLE_VIDEO.read_bytes()]
        return
    with public_urls.stream(
        url,
        max_bytes=settings.VIDEO_MAX_BYTES,
        deadline_seconds=VIDEO_COPY_DEADLINE_SECONDS,
        allowed_hosts=settings.FAL_MEDIA_HOSTS,
        max_redirects=VIDEO_COPY_MAX_REDIRECTS,
    ) as chunks:
        yield chunks


def finish(*, generation_id: UUID) -> None:
    """Copy the finished video into our storage, then succeed and capture. One worker at a
    time: a lease renewed by a heartbeat while the copy lasts, so a slow copy is never
    taken over and a dead worker's is, by the sweep, once its lease lapsed (`leases`). A
    failed copy is retried by the sweep without charging again."""
    now = timezone.now()
    held_until = leases.generation_lease_expiry()
    claimed = (
        Generation.objects.filter(pk=generation_id, status__in=Generation.IN_FLIGHT)
        .exclude(fal_video_url="")
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        # Due again as soon as the lease lapses (a dead worker), not after the dispatch grace.
        .update(lease_until=held_until, next_poll_at=None)
    )
    if not claimed:
        return
    generation = Generation.objects.get(pk=generation_id)
    try:
        # Streamed from fal into storage (S3: a multipart upload), never whole in memory;
        # a failed upload (StorageUnavailable, an OSError) is retried like a failed download.
        with (
            leases.generation_heartbeat(generation.pk, held_until, work="finish"),
            _video_stream(generation.fal_video_url) as chunks,
        ):
            name, size = storage.save_stream(
                generation.video.storage,
                generation.video.field.generate_filename(generation, "video.mp4"),
                chunks,
            )
    except public_urls.ResponseTooLarge as exc:
        logger.warning("event=video_too_large generation=%s reason=%r", generation.pk, str(exc))
        fail(
            generation_id=generation.pk,
            code="storage_error",
            message=f"The video is over the size limit ({settings.VIDEO_MAX_BYTES} bytes).",
        )
        return
    except public_urls.UrlRefused as exc:
        if exc.retryable:  # fal's host did not resolve this time
            _finish_failed(generation, exc)
            return
        # A video URL off fal's media hosts, or leading inside our network: the result or
        # the webhook that named it is not to be trusted. Nothing is fetched or charged.
        logger.warning(
            "event=video_url_refused generation=%s url=%r reason=%r",
            generation.pk,
            generation.fal_video_url,
            str(exc),
        )
        fail(generation_id=generation.pk, code="upstream_error", message=VIDEO_REFUSED_MESSAGE)
        return
    except storage.StorageUnavailable as exc:
        # Our storage refused the copy (an S3 outage, a full disk): our problem, not the
        # video's, which fal has made and billed. Staff see it; the copy waits for the
        # storage (until the generation's deadline) without counting against the video.
        logger.error(
            "event=video_store_unavailable generation=%s reason=%r", generation.pk, str(exc)
        )
        _retry_copy(generation, failures=generation.finish_failures, after=STORAGE_RETRY)
        return
    except (httpx.HTTPError, OSError, ValueError) as exc:
        _finish_failed(generation, exc)
        return
    if not succeed(generation=generation, video_name=name, video_bytes=size):
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
    _retry_copy(generation, failures=failures, after=backoff(failures, first=5, cap=120))


def _retry_copy(generation: Generation, *, failures: int, after: timedelta) -> None:
    Generation.objects.filter(pk=generation.pk, status__in=Generation.IN_FLIGHT).update(
        finish_failures=failures, lease_until=None, next_poll_at=timezone.now() + after
    )
