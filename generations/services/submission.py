"""Sending a generation to fal, once: its arguments, its input image's URL, the webhook."""

from __future__ import annotations

import io
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import httpx
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from generations import catalogue, fair_share, leases, states
from generations.costs import fal_cost_usd
from generations.dispatch import enqueue
from generations.fal import (
    FalAccountProblem,
    FalError,
    FalOutcomeUnknown,
    FalRejected,
    FalRetryable,
    FalStorageUnavailable,
    get_gateway,
)
from generations.fal_webhooks import webhook_token
from generations.models import Generation, GenerationImage
from generations.services import account
from generations.services.settlement import fail, fail_for_fal
from generations.validation import ALLOWED_IMAGE_FORMATS, check_image_file
from veoproject import public_urls, site_urls, storage
from veoproject.backoff import backoff

logger = logging.getLogger(__name__)

Status = Generation.Status

UNKNOWN_OUTCOME_GRACE = timedelta(seconds=60)  # before a submit with no answer is retried
MAX_SUBMIT_ATTEMPTS = 6
SIGNED_IMAGE_MAX_AGE = 2 * 3600
SIGNED_IMAGE_SALT = "generations.signed-image"
# fal keeps an uploaded input this long past the generation's deadline (then deletes it).
FAL_IMAGE_GRACE = timedelta(hours=1)
# While fal's storage refuses the input image: a tenth of the generation's age, in these
# bounds (not a submit attempt; the generation's deadline still ends the wait).
STORAGE_RETRY_MIN = timedelta(seconds=2)
STORAGE_RETRY_MAX = timedelta(minutes=2)
# A user's image URL the worker could not fetch for a reason that may pass (a timeout, a 5xx, a
# refused connection) is tried this many times, with the submit's backoff, then failed.
IMAGE_URL_ATTEMPTS = 3
IMAGE_URL_MAX_REDIRECTS = 3
IMAGE_URL_FAILED = "invalid_image_url"  # the failure code (generations/wording.py)
# How long a surplus job's id is remembered: fal may deliver its webhook until the job
# ends (at most the generation's deadline) and retries a delivery for 2 hours.
WEBHOOK_RETRY_WINDOW = timedelta(hours=2)


def _back_to_pending(
    generation: Generation,
    *,
    next_poll_at: datetime | None,
    counted: bool = True,
    refused_after: int = 0,
) -> None:
    """A submit that sent nothing fal kept: the generation waits as pending, its hold kept,
    to be submitted again from `next_poll_at` (None: when dispatch resumes). `counted`:
    whether this try uses up one of its attempts. `refused_after`: the POSTs this try made,
    the last of them refused (or never connected), so only the earlier ones, which the
    client retried after a dropped connection, may have left a job on fal."""
    states.transition(
        generation.pk,
        to=Status.PENDING,
        sources=[Status.SUBMITTING],
        lease_until=None,
        next_poll_at=next_poll_at,
        attempts=F("attempts") - (0 if counted else 1),
        fal_submit_count=F("fal_submit_count") + max(refused_after - 1, 0),
    )


def signed_image_token(generation: Generation) -> str:
    return signing.dumps(str(generation.pk), salt=SIGNED_IMAGE_SALT)


def generation_for_signed_image(token: str) -> Generation | None:
    try:
        pk = signing.loads(token, salt=SIGNED_IMAGE_SALT, max_age=SIGNED_IMAGE_MAX_AGE)
    except signing.BadSignature:
        return None
    return Generation.objects.filter(pk=pk).first()


def _stored_image(generation: Generation | GenerationImage) -> tuple[bytes, str, str]:
    """The stored upload's bytes, content type and a file name, the last two from the
    format Pillow reads in the bytes (never from what the client called the file). Of a
    generation's own image, or of one of a multi-image model's inputs."""
    with generation.image.open("rb") as file:
        data = file.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
    except UnidentifiedImageError:
        image_format = None
    if image_format is None or image_format not in ALLOWED_IMAGE_FORMATS:  # checked at accept
        raise FalRejected("The uploaded image could not be read.")
    return data, Image.MIME[image_format], f"input.{ALLOWED_IMAGE_FORMATS[image_format]}"


class ImageUrlProblem(Exception):
    """The user's `image_url` gave no usable image. `reason`, our own words, is recorded on
    the generation (the owner reads its code's words, `generations.wording`); `retryable`:
    it may pass (a timeout, a 5xx, a refused connection), so the fetch is tried again."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def _fetched_image(generation: Generation | GenerationImage) -> tuple[bytes, str, str]:
    """The user's `image_url` fetched through the one SSRF rule (https, public addresses,
    each redirect re-checked, one deadline, the upload size cap), then held to the upload
    rule (`validation.check_image_file`: format, pixels, minimum size). Returns the bytes,
    their content type and a file name (from the format Pillow read). Raises
    ImageUrlProblem."""
    url = generation.image_url
    try:
        with public_urls.stream(
            url,
            max_bytes=settings.IMAGE_MAX_BYTES,
            deadline_seconds=settings.IMAGE_URL_TIMEOUT_SECONDS,
            max_redirects=IMAGE_URL_MAX_REDIRECTS,
            private_allowed=False,  # a user's URL never reaches inside, in any network
        ) as chunks:
            data = b"".join(chunks)
    except public_urls.UrlRefused as exc:
        raise ImageUrlProblem(str(exc), retryable=exc.retryable) from None
    except public_urls.ResponseTooLarge:
        limit = settings.IMAGE_MAX_BYTES // (1024 * 1024)
        raise ImageUrlProblem(f"The image is too large (at most {limit} MB).") from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        retryable = status in (408, 425, 429) or status >= 500
        raise ImageUrlProblem(
            f"The image URL answered HTTP {status}.", retryable=retryable
        ) from None
    except httpx.TimeoutException:
        seconds = settings.IMAGE_URL_TIMEOUT_SECONDS
        raise ImageUrlProblem(
            f"The image URL did not answer in time ({seconds:g} s).", retryable=True
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # refused, reset, TLS, bad answer
        raise ImageUrlProblem(
            f"The image URL could not be reached ({exc.__class__.__name__}).", retryable=True
        ) from None
    try:
        extension = check_image_file(SimpleUploadedFile("image", data))
    except ValidationError as exc:
        raise ImageUrlProblem(" ".join(exc.messages)) from None
    image_format = next(name for name, ext in ALLOWED_IMAGE_FORMATS.items() if ext == extension)
    return data, Image.MIME[image_format], f"input.{extension}"


def _fal_image_cache_key(generation: Generation, source: GenerationImage | None = None) -> str:
    key = f"generations:fal-image:{generation.pk}"
    return f"{key}:{source.pk}" if source is not None else key


def _image_for_fal(generation: Generation, source: GenerationImage | None = None) -> str:
    """The URL fal fetches the input from.

    A user's URL is fetched and checked first (`_fetched_image`, unless IMAGE_URL_CHECK is
    off, when it goes as given): a broken link fails here, before anything reaches fal,
    and the bytes we checked go to fal's storage like an upload, so fal renders the very
    image we checked (not what the URL serves later, nor a URL fal may fail to reach).

    An image goes to fal's own storage once per generation: its URL is cached until the
    generation's deadline, in the cache the web and workers share, so a resubmit from any
    worker reuses it (a lost entry only costs one more upload, or fetch). fal deletes the
    file an hour after that deadline. When fal's storage is unavailable, a user's URL goes
    as given (checked, fal fetches it); for an upload our own copy stands in: a
    presigned URL of the bucket with S3 storage, else a signed URL to our view if the site
    is public (PUBLIC_BASE_URL); otherwise
    FalStorageUnavailable, and the submit waits for storage with a growing delay, without
    counting an attempt (`submit`).

    `source` is one input of a multi-image model (first/last frame, a reference): the
    same, except that our signed view serves only a generation's own image.
    """
    image = source if source is not None else generation
    if image.image_url and not settings.IMAGE_URL_CHECK:
        return image.image_url
    key = _fal_image_cache_key(generation, source)
    cached = cache.get(key)
    if cached:
        return cached
    if image.image_url:
        data, content_type, file_name = _fetched_image(image)
    else:
        data, content_type, file_name = _stored_image(image)
    deadline = generation.deadline_at or timezone.now() + timedelta(
        seconds=settings.GENERATION_DEADLINE_SECONDS
    )
    useful_for = max(int((deadline - timezone.now()).total_seconds()), 0)
    try:
        url = get_gateway().upload_image(
            data=data,
            content_type=content_type,
            file_name=file_name,
            expires_in=useful_for + int(FAL_IMAGE_GRACE.total_seconds()),
        )
    except FalStorageUnavailable as exc:
        if image.image_url:
            logger.warning(
                "event=fal_upload_failed generation=%s fallback=image_url reason=%s",
                generation.pk,
                exc,
            )
            return image.image_url  # checked above; fal fetches it itself
        # With S3 the bucket itself serves a presigned URL (no public site needed).
        presigned = storage.presigned_url(
            image.image.storage,
            image.image.name,
            content_type=content_type,
            filename=file_name,
            cache_control="private, no-store",
            expires_in=SIGNED_IMAGE_MAX_AGE,
        )
        # Our signed view serves a generation's own image, on the site's public address.
        signed = (
            None
            if presigned or source is not None
            else site_urls.for_fal(
                reverse("generation-image-signed", args=[signed_image_token(generation)])
            )
        )
        fallback = "presigned_url" if presigned else "signed_url" if signed else "retry_later"
        logger.warning(
            "event=fal_upload_failed generation=%s fallback=%s reason=%s",
            generation.pk,
            fallback,
            exc,
        )
        if presigned:
            return presigned
        if signed is None:
            raise
        return signed
    if useful_for:
        cache.set(key, url, timeout=useful_for)
    logger.info(
        "event=fal_image_uploaded generation=%s content_type=%s bytes=%s",
        generation.pk,
        content_type,
        len(data),
    )
    return url


def fal_arguments(generation: Generation) -> dict[str, Any]:
    """What the generation's model takes (`catalogue.Model.arguments`): every option
    explicit, its images as URLs fal can fetch under fal's field names, and the optional
    arguments the request gave."""
    model = catalogue.get(generation.model)
    images: dict[str, Any] = {}
    if model.images == "image":
        images["image_url"] = _image_for_fal(generation)
    for source in generation.input_images.order_by("slot", "position"):
        url = _image_for_fal(generation, source)
        if source.slot == GenerationImage.Slot.REFERENCE:
            images.setdefault(source.slot, []).append(url)
        else:
            images[source.slot] = url
    return model.arguments(
        prompt=generation.prompt,
        aspect_ratio=generation.aspect_ratio,
        duration=generation.duration,
        resolution=generation.resolution,
        generate_audio=generation.generate_audio,
        images=images,
        options=generation.model_options,
    )


def fal_webhook_url(generation: Generation) -> str | None:
    """Where fal posts this generation's webhook. The token proves a webhook is about this
    generation: fal signs every customer's webhooks with the same keys."""
    query = urlencode({"generation": str(generation.pk), "token": webhook_token(generation.pk)})
    return site_urls.for_fal(f"{reverse('fal-webhook')}?{query}")  # None: the site is not public


def _storage_delay(generation: Generation) -> timedelta:
    """How long to wait for fal's storage: grows as the wait lasts, 2 s to 2 min."""
    age = timezone.now() - generation.created_at
    return min(max(age / 10, STORAGE_RETRY_MIN), STORAGE_RETRY_MAX)


def job_on_fal(generation: Generation, request_id: str) -> dict[str, Any]:
    """The fields that record fal's job for a generation as it moves to `queued`, from the
    submit's answer or from a webhook that adopts the job: with what fal bills for it at
    today's price."""
    return {
        "fal_request_id": request_id,
        "fal_cost_usd": fal_cost_usd(generation),
        "submitted_at": timezone.now(),
        "lease_until": None,
    }


def _surplus_key(request_id: str) -> str:
    return f"generations:fal-surplus:{request_id}"


def _remember_surplus_job(generation: Generation, request_id: str) -> None:
    """Note that we sent `request_id` for this generation and found it surplus, so that its
    webhook is acknowledged (`is_surplus_job`). In the cache the web and workers share: a
    lost entry only means that webhook is refused, as one we cannot tell is ours."""
    lifetime = timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS) + WEBHOOK_RETRY_WINDOW
    cache.set(_surplus_key(request_id), str(generation.pk), timeout=int(lifetime.total_seconds()))


def is_surplus_job(generation: Generation, request_id: str) -> bool:
    """Whether `request_id` is a job we sent for this generation besides the one it follows
    (a resubmit's, found surplus). Only such jobs are known: one whose submit had no
    answer and that nothing adopted never told us its id."""
    return generation.fal_submit_count > 1 and cache.get(_surplus_key(request_id)) == str(
        generation.pk
    )


def submit(*, generation_id: UUID, probe: bool = False) -> None:
    """Send one generation to fal, once. Runs in a worker; safe to run twice.

    429/5xx/unreachable: back to pending with backoff. A 4xx: failed and released. No
    answer (timeout, dropped connection): the outcome is unknown; it stays `submitting`
    and the sweep submits again after a grace period, counting the possible duplicate.
    fal refuses our account (locked, billing, key): back to pending, attempt not counted,
    and dispatch pauses for everyone (`services.account`). While paused only the sweep's
    `probe` is sent; its success resumes dispatch. fal's storage refusing the input image:
    back to pending with a growing delay, attempt not counted (nothing reached fal's queue).
    """
    if not probe and account.dispatch_paused():
        # It waits, pending; resuming dispatch makes it due. The sweep sends the probes,
        # so make sure a sweep chain runs (one at a time: the lease), also when the worker
        # that held the last chain died and nothing else would wake one.
        enqueue("sweep")
        return
    now = timezone.now()
    claimable = Q(status=Status.PENDING) | Q(
        status=Status.SUBMITTING, lease_until__lt=now, fal_request_id=""
    )
    held_until = leases.generation_lease_expiry()  # renewed while fal is being asked
    claimed = states.transition(
        generation_id,
        to=Status.SUBMITTING,
        where=claimable & Q(fal_video_url=""),
        lease_until=held_until,
        attempts=F("attempts") + 1,
        next_poll_at=None,
    )
    if not claimed:
        # In our queue (FAL_MAX_CONCURRENCY): grant what slots are free, fairly; this one's
        # submit is enqueued when its turn comes, or, if it came now, made here (the
        # enqueued one then finds it claimed).
        waiting = Generation.objects.filter(pk=generation_id, status=Status.WAITING)
        if waiting.exists() and generation_id in fair_share.fill_slots():
            submit(generation_id=generation_id)
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
        with leases.generation_heartbeat(generation.pk, held_until, work="submit"):
            submitted = get_gateway().submit(
                arguments=fal_arguments(generation),
                webhook_url=fal_webhook_url(generation),
                endpoint=generation.endpoint,
            )
    except FalStorageUnavailable as exc:
        # fal's storage, not this generation nor fal's queue: nothing was sent, and the
        # try is not counted (an outage must not use up its attempts). The deadline still
        # ends a wait that lasts (`services.sweeping`: released, nothing charged).
        delay = _storage_delay(generation)
        _back_to_pending(generation, next_poll_at=timezone.now() + delay, counted=False)
        logger.warning(
            "event=fal_submit_waits_for_storage generation=%s retry_in=%s reason=%s",
            generation.pk,
            int(delay.total_seconds()),
            exc,
        )
        enqueue("sweep")
        return
    except FalRetryable as exc:
        _back_to_pending(
            generation,
            next_poll_at=timezone.now() + backoff(generation.attempts, first=2, cap=120),
            refused_after=exc.posts,
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
    except ImageUrlProblem as exc:
        _image_url_failed(generation, exc)
        return
    except FalAccountProblem as exc:
        # Our account, not this generation: it waits, its hold kept, this try not counted.
        _back_to_pending(generation, next_poll_at=None, counted=False, refused_after=exc.posts)
        logger.error(
            "event=fal_submit_refused_account generation=%s status=%s reason=%s probe=%s raw=%r",
            generation.pk,
            exc.status_code,
            exc.reason,
            int(probe),
            exc.raw[:500],
        )
        account.pause_dispatch(reason=exc.reason, message=exc.raw)
        return
    except FalRejected as exc:
        fail_for_fal(
            generation_id=generation.pk,
            code=exc.code,
            raw=exc.raw,
            message=exc.message,
            event="fal_submit_rejected",
        )
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
    recorded = states.transition(
        generation.pk,
        to=Status.QUEUED,
        sources=[Status.SUBMITTING],
        where=Q(fal_request_id="") | Q(fal_request_id=submitted.request_id),
        **job_on_fal(generation, submitted.request_id),
        fal_submit_count=F("fal_submit_count") + submitted.attempts,
        next_poll_at=timezone.now() + timedelta(seconds=1),
    )
    if not recorded:
        # Canceled, failed or finished (by a webhook of an earlier job) meanwhile: this
        # job is surplus. Count it and ask fal to drop it; the user is not charged twice.
        Generation.objects.filter(pk=generation.pk).update(
            fal_submit_count=F("fal_submit_count") + submitted.attempts
        )
        _remember_surplus_job(generation, submitted.request_id)
        logger.warning(
            "event=fal_surplus_job generation=%s request=%s", generation.pk, submitted.request_id
        )
        enqueue("cancel_on_fal", submitted.request_id)
        return
    logger.info("event=fal_submitted generation=%s request=%s", generation.pk, submitted.request_id)
    if probe:
        account.resume_dispatch()  # fal takes work again
    enqueue("sweep")


def _image_url_failed(generation: Generation, problem: ImageUrlProblem) -> None:
    """The user's image URL gave no usable image and nothing reached fal. A retryable one
    is tried again with the submit's backoff, IMAGE_URL_ATTEMPTS times in all; any other
    fails the generation at once, its hold released."""
    if problem.retryable and generation.attempts < IMAGE_URL_ATTEMPTS:
        _back_to_pending(
            generation,
            next_poll_at=timezone.now() + backoff(generation.attempts, first=2, cap=120),
        )
        logger.info(
            "event=image_url_retry generation=%s attempt=%s reason=%s",
            generation.pk,
            generation.attempts,
            problem,
        )
        enqueue("sweep")  # the sweep submits it again when the backoff is over
        return
    logger.info("event=image_url_refused generation=%s reason=%s", generation.pk, problem)
    fail(generation_id=generation.pk, code=IMAGE_URL_FAILED, message=problem.reason)


def cancel_on_fal(*, request_id: str) -> None:
    try:
        get_gateway().cancel(request_id=request_id)
    except FalAccountProblem as exc:
        logger.error(
            "event=fal_credentials_refused request=%s call=cancel status=%s raw=%r",
            request_id,
            exc.status_code,
            exc.raw[:500],
        )
        account.credentials_refused(message=exc.raw)
    except FalError as exc:
        logger.warning("event=fal_cancel_failed request=%s reason=%s", request_id, exc)
