"""Sending a generation to fal, once: its arguments, its input image's URL, the webhook."""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from generations.dispatch import enqueue
from generations.fal import (
    FalError,
    FalOutcomeUnknown,
    FalRejected,
    FalRetryable,
    get_gateway,
)
from generations.models import Generation
from generations.services.settlement import fail

logger = logging.getLogger(__name__)

Status = Generation.Status

SUBMIT_LEASE = timedelta(seconds=120)  # above the fal client's worst case for one submit
UNKNOWN_OUTCOME_GRACE = timedelta(seconds=60)  # before a submit with no answer is retried
MAX_SUBMIT_ATTEMPTS = 6
SIGNED_IMAGE_MAX_AGE = 2 * 3600
SIGNED_IMAGE_SALT = "generations.signed-image"


def _public_url(path: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}{path}"


def signed_image_token(generation: Generation) -> str:
    return signing.dumps(str(generation.pk), salt=SIGNED_IMAGE_SALT)


def generation_for_signed_image(token: str) -> Generation | None:
    try:
        pk = signing.loads(token, salt=SIGNED_IMAGE_SALT, max_age=SIGNED_IMAGE_MAX_AGE)
    except signing.BadSignature:
        return None
    return Generation.objects.filter(pk=pk).first()


def _image_for_fal(generation: Generation) -> str:
    """The URL fal fetches the input from. A user's URL goes as given. An upload goes as a
    signed URL that expires (when the site is public), else inline as a data URI."""
    if generation.image_url:
        return generation.image_url
    if settings.PUBLIC_BASE_URL:
        return _public_url(
            reverse("generation-image-signed", args=[signed_image_token(generation)])
        )
    with generation.image.open("rb") as image:
        data = image.read()
    extension = generation.image.name.rsplit(".", 1)[-1].lower()
    mime = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png"}.get(
        extension, "image/webp"
    )
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def fal_arguments(generation: Generation) -> dict[str, Any]:
    """The seed's input schema, every option explicit (fal's aspect default is now auto)."""
    return {
        "prompt": generation.prompt,
        "image_url": _image_for_fal(generation),
        "aspect_ratio": generation.aspect_ratio,
        "duration": generation.duration,
        "resolution": generation.resolution,
        "generate_audio": generation.generate_audio,
    }


def fal_webhook_url(generation: Generation) -> str | None:
    if not settings.PUBLIC_BASE_URL:
        return None
    return _public_url(f"{reverse('fal-webhook')}?generation={generation.pk}")


def _backoff(attempt: int, *, base: float = 2.0, cap: float = 120.0) -> timedelta:
    return timedelta(seconds=min(cap, base * 2 ** max(attempt - 1, 0)))


def submit(*, generation_id: UUID) -> None:
    """Send one generation to fal, once. Runs in a worker; safe to run twice.

    429/5xx/unreachable: back to pending with backoff. A 4xx: failed and released. No
    answer (timeout, dropped connection): the outcome is unknown; it stays `submitting`
    and the sweep submits again after a grace period, counting the possible duplicate.
    """
    now = timezone.now()
    claimable = Q(status=Status.PENDING) | Q(
        status=Status.SUBMITTING, lease_until__lt=now, fal_request_id=""
    )
    claimed = (
        Generation.objects.filter(claimable, pk=generation_id)
        .filter(Q(fal_video_url=""))
        .update(
            status=Status.SUBMITTING,
            lease_until=now + SUBMIT_LEASE,
            attempts=F("attempts") + 1,
            next_poll_at=None,
        )
    )
    if not claimed:
        return
    generation = Generation.objects.get(pk=generation_id)
    if generation.attempts > MAX_SUBMIT_ATTEMPTS:
        fail(
            generation_id=generation.pk,
            code="upstream_error",
            message="The video service did not accept the job after several attempts.",
        )
        return
    if generation.fal_submit_count:
        logger.warning(
            "event=fal_resubmit generation=%s previous_posts=%s possible_duplicate=1",
            generation.pk,
            generation.fal_submit_count,
        )
    try:
        submitted = get_gateway().submit(
            arguments=fal_arguments(generation), webhook_url=fal_webhook_url(generation)
        )
    except FalRetryable as exc:
        Generation.objects.filter(pk=generation.pk, status=Status.SUBMITTING).update(
            status=Status.PENDING,
            lease_until=None,
            next_poll_at=timezone.now() + _backoff(generation.attempts),
            # The last POST was refused (or never connected): only earlier ones the
            # client retried (a dropped connection) may have left a job on fal.
            fal_submit_count=F("fal_submit_count") + max(exc.posts - 1, 0),
        )
        logger.info("event=fal_submit_retry generation=%s reason=%s", generation.pk, exc)
        enqueue("sweep")  # the sweep retries it when the backoff is over
        return
    except FalOutcomeUnknown as exc:
        Generation.objects.filter(pk=generation.pk, status=Status.SUBMITTING).update(
            lease_until=timezone.now() + UNKNOWN_OUTCOME_GRACE,
            fal_submit_count=F("fal_submit_count") + max(exc.posts, 1),
        )
        logger.warning("event=fal_submit_unknown generation=%s reason=%s", generation.pk, exc)
        enqueue("sweep")
        return
    except FalRejected as exc:
        fail(generation_id=generation.pk, code=exc.code, message=exc.message)
        return
    except Exception:
        # Unexpected: leave it to the sweep (the lease expires), never lose the job.
        logger.exception("event=submit_crashed generation=%s", generation.pk)
        raise

    if submitted.attempts > 1:
        logger.warning(
            "event=fal_submit_retried generation=%s posts=%s possible_duplicate=1",
            generation.pk,
            submitted.attempts,
        )
    now = timezone.now()
    recorded = (
        Generation.objects.filter(pk=generation.pk, status=Status.SUBMITTING)
        .filter(Q(fal_request_id="") | Q(fal_request_id=submitted.request_id))
        .update(
            status=Status.QUEUED,
            fal_request_id=submitted.request_id,
            fal_submit_count=F("fal_submit_count") + submitted.attempts,
            submitted_at=now,
            lease_until=None,
            next_poll_at=now + timedelta(seconds=1),
        )
    )
    if not recorded:
        # Canceled, failed or finished (by a webhook of an earlier job) meanwhile: this
        # job is surplus. Count it and ask fal to drop it; the user is not charged twice.
        Generation.objects.filter(pk=generation.pk).update(
            fal_submit_count=F("fal_submit_count") + submitted.attempts
        )
        logger.warning(
            "event=fal_surplus_job generation=%s request=%s", generation.pk, submitted.request_id
        )
        enqueue("cancel_on_fal", submitted.request_id)
        return
    logger.info("event=fal_submitted generation=%s request=%s", generation.pk, submitted.request_id)
    enqueue("sweep")


def cancel_on_fal(*, request_id: str) -> None:
    try:
        get_gateway().cancel(request_id=request_id)
    except FalError as exc:
        logger.warning("event=fal_cancel_failed request=%s reason=%s", request_id, exc)
