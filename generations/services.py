"""A generation's life: accept, submit, follow, finish or fail, cancel.

Every state change is a conditional UPDATE from the expected status(es), so a duplicate
webhook, a late poll, a task delivered twice or two workers racing change nothing the
second time. Money moves only through `accounts.ledger` (hold at accept; exactly one
capture or release), inside the same transaction as the status change that causes it.
Side effects (tasks, callbacks, fal cancels) are enqueued in `transaction.on_commit`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min, Q
from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from accounts.models import CreditAccount, User
from generations import pricing
from generations.dispatch import enqueue
from generations.fal import (
    FalError,
    FalJobFailed,
    FalOutcomeUnknown,
    FalRejected,
    FalRetryable,
    JobStatus,
    describe_model_error,
    get_gateway,
)
from generations.models import Generation
from generations.moderation import find_blocked_term
from generations.validation import GenerationParams, validate_params
from veoproject.exceptions import (
    IdempotencyKeyReused,
    InvalidTransition,
    LimitExceeded,
    ValidationFailed,
)

logger = logging.getLogger(__name__)

Status = Generation.Status

SUBMIT_LEASE = timedelta(seconds=120)  # above the fal client's worst case for one submit
UNKNOWN_OUTCOME_GRACE = timedelta(seconds=60)  # before a submit with no answer is retried
DISPATCH_GRACE = timedelta(seconds=30)  # a dispatched task should have started by then
FINISH_LEASE = timedelta(seconds=120)  # one worker downloads the video at a time
MAX_SUBMIT_ATTEMPTS = 6
MAX_FINISH_FAILURES = 5
SIGNED_IMAGE_MAX_AGE = 2 * 3600
SIGNED_IMAGE_SALT = "generations.signed-image"

__all__ = [
    "AcceptResult",
    "accept",
    "cancel",
    "fail",
    "finish",
    "refresh_from_fal",
    "submit",
    "sweep",
    "validate_params",
]


# --- Accept -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptResult:
    generation: Generation
    replayed: bool = False


def _image_digest(image_file: UploadedFile | None) -> str:
    if image_file is None:
        return ""
    digest = hashlib.sha256()
    image_file.seek(0)
    for chunk in image_file.chunks():
        digest.update(chunk)
    image_file.seek(0)
    return digest.hexdigest()


def _replay(*, user: User, idempotency_key: str, fingerprint: str) -> AcceptResult | None:
    earlier = Generation.objects.filter(owner=user, idempotency_key=idempotency_key).first()
    if earlier is None:
        return None
    if earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    return AcceptResult(generation=earlier, replayed=True)


def _check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255 or not key.isprintable():
        raise ValidationFailed(
            "The Idempotency-Key must be 1 to 255 printable characters.",
            code="invalid_idempotency_key",
        )
    return key


def accept(
    *,
    user: User,
    params: dict[str, Any],
    image_file: UploadedFile | None = None,
    idempotency_key: str | None = None,
) -> AcceptResult:
    """Validate, quote, hold the credits, create the generation and enqueue its submit, in
    one transaction. With an Idempotency-Key, the same request again returns the first
    generation (`replayed=True`); a different request with that key is refused."""
    idempotency_key = _check_idempotency_key(idempotency_key)
    rates = pricing.active_rates()
    clean: GenerationParams = validate_params(params=params, image_file=image_file, rates=rates)
    fingerprint = clean.fingerprint(_image_digest(image_file))
    if idempotency_key:
        earlier = _replay(user=user, idempotency_key=idempotency_key, fingerprint=fingerprint)
        if earlier:
            return earlier

    blocked = find_blocked_term(clean.prompt)
    if blocked:
        raise ValidationFailed(
            "The prompt contains a term that is not allowed on this service.",
            code="blocked_term",
            fields={"prompt": ["This prompt contains a term that is not allowed."]},
        )
    quote = pricing.quote(
        duration=clean.duration,
        resolution=clean.resolution,
        generate_audio=clean.generate_audio,
        rates=rates,
    )
    now = timezone.now()
    generation = Generation(
        owner=user,
        prompt=clean.prompt,
        image_url=clean.image_url,
        aspect_ratio=clean.aspect_ratio,
        duration=clean.duration,
        resolution=clean.resolution,
        generate_audio=clean.generate_audio,
        endpoint=quote.endpoint,
        cost_credits=quote.credits,
        callback_url=clean.callback_url,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        next_poll_at=now + DISPATCH_GRACE,
        deadline_at=now + timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS),
    )
    try:
        with transaction.atomic():
            _check_in_flight_cap(user)
            if image_file is not None:
                generation.image.save(image_file.name or "image", image_file, save=False)
            generation.save(force_insert=True)
            # A brand-new generation cannot clash with an earlier hold: no savepoint.
            ledger.hold(generation=generation, savepoint=False)
            transaction.on_commit(lambda: enqueue("submit", generation.pk))
    except IntegrityError:
        _delete_file(generation.image)
        if idempotency_key:  # the same key raced in from a parallel request
            earlier = _replay(user=user, idempotency_key=idempotency_key, fingerprint=fingerprint)
            if earlier:
                return earlier
        raise
    except Exception:
        _delete_file(generation.image)
        raise
    logger.info(
        "event=generation_accepted generation=%s user=%s cost=%s",
        generation.pk,
        user.pk,
        generation.cost_credits,
    )
    return AcceptResult(generation=generation)


def _check_in_flight_cap(user: User) -> None:
    cap = settings.MAX_IN_FLIGHT_PER_USER
    if not cap:
        return
    # Serialise this user's accepts, so the cap holds under concurrency (a row lock on
    # PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers).
    CreditAccount.objects.select_for_update().filter(user=user).first()
    if Generation.objects.filter(owner=user).in_flight().count() >= cap:
        raise LimitExceeded(
            f"You have {cap} generations in progress; wait for one to finish.",
            retry_after=15,
        )


def _delete_file(field) -> None:
    if field and field.name:
        try:
            field.storage.delete(field.name)
        except OSError:
            logger.warning("event=orphan_file_not_deleted name=%s", field.name)


# --- Cancel -------------------------------------------------------------------------------------


CANCELABLE = (Status.PENDING, Status.SUBMITTING, Status.QUEUED)


def cancel(*, generation: Generation, actor: User | None = None) -> Generation:
    """Cancel a generation that fal has not started rendering; its hold is released at
    once. A job already on fal's queue is canceled there too (after commit)."""
    by = "staff" if actor is not None and actor.pk != generation.owner_id else "you"
    message = "Canceled by staff." if by == "staff" else "Canceled at your request."
    with transaction.atomic():
        changed = _finalize(
            generation.pk,
            CANCELABLE,
            status=Status.CANCELED,
            error_code="canceled",
            error_message=message,
        )
        if not changed:
            generation.refresh_from_db()
            raise InvalidTransition(f"A {generation.public_status} generation cannot be canceled.")
        generation.refresh_from_db()
        ledger.release(generation=generation, reason="canceled")
        if generation.fal_request_id:
            request_id = generation.fal_request_id
            transaction.on_commit(lambda: enqueue("cancel_on_fal", request_id))
        _after_final(generation)
    logger.info("event=generation_canceled generation=%s by=%s", generation.pk, by)
    return generation


# --- Final states ---------------------------------------------------------------------------


def _finalize(pk: UUID, from_statuses, **fields) -> bool:
    """Move to a final status if the generation is still in one of `from_statuses`."""
    return bool(
        Generation.objects.filter(pk=pk, status__in=from_statuses).update(
            completed_at=timezone.now(), lease_until=None, next_poll_at=None, **fields
        )
    )


def _after_final(generation: Generation) -> None:
    if generation.callback_url:
        from generations.callbacks import enqueue_callback

        transaction.on_commit(lambda: enqueue_callback(generation=generation))


def fail(*, generation_id: UUID, code: str, message: str) -> bool:
    """Fail an in-flight generation and release its hold. False if it already ended."""
    with transaction.atomic():
        if not _finalize(
            generation_id,
            Generation.IN_FLIGHT,
            status=Status.FAILED,
            error_code=code[:40],
            error_message=message[:2000],
        ):
            return False
        generation = Generation.objects.get(pk=generation_id)
        ledger.release(generation=generation, reason=code)
        _after_final(generation)
    logger.info("event=generation_failed generation=%s code=%s", generation_id, code)
    return True


def _succeed(*, generation: Generation, video_name: str, video_bytes: int) -> bool:
    with transaction.atomic():
        if not _finalize(
            generation.pk,
            Generation.IN_FLIGHT,
            status=Status.SUCCEEDED,
            video=video_name,
            video_bytes=video_bytes,
            error_code="",
            error_message="",
            fal_queue_position=None,
        ):
            return False
        generation.refresh_from_db()
        ledger.capture(generation=generation)
        _after_final(generation)
    logger.info("event=generation_succeeded generation=%s", generation.pk)
    return True


# --- Submit ---------------------------------------------------------------------------------


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


# --- Following a job -------------------------------------------------------------------------


def _poll_delay(generation: Generation, job: JobStatus) -> timedelta:
    """How soon to ask fal again. Webhooks are the fast path when the site is public;
    without them, status should lag fal by a few seconds at most."""
    if settings.PUBLIC_BASE_URL:
        return timedelta(seconds=10)
    if job.state == "queued":
        return timedelta(seconds=min(1 + (job.queue_position or 0), 8))
    started = generation.started_at or generation.submitted_at or generation.created_at
    age = (timezone.now() - started).total_seconds()
    return timedelta(seconds=min(max(age / 20, 1.0), 3.0))


def apply_status(*, generation: Generation, job: JobStatus) -> None:
    """Record a queued/running status (never moves a generation backwards)."""
    now = timezone.now()
    next_poll_at = now + _poll_delay(generation, job)
    in_flight = Generation.objects.filter(pk=generation.pk)
    if job.state == "queued":
        in_flight.filter(status=Status.QUEUED).update(
            fal_queue_position=job.queue_position, next_poll_at=next_poll_at
        )
    elif job.state == "running":
        updated = in_flight.filter(status=Status.QUEUED).update(
            status=Status.RUNNING,
            started_at=now,
            fal_queue_position=None,
            fal_logs=job.logs,
            next_poll_at=next_poll_at,
        )
        if not updated:
            in_flight.filter(status=Status.RUNNING).update(
                fal_logs=job.logs, next_poll_at=next_poll_at
            )


def _record_video_url(generation: Generation, video_url: str) -> None:
    Generation.objects.filter(pk=generation.pk, status__in=Generation.IN_FLIGHT).update(
        fal_video_url=video_url,
        next_poll_at=timezone.now() + DISPATCH_GRACE,
    )
    enqueue("finish", generation.pk)


def _follow(generation: Generation) -> None:
    """Ask fal about one generation and act on the answer (a sweep step, or staff's
    "check now")."""
    gateway = get_gateway()
    try:
        job = gateway.status(request_id=generation.fal_request_id)
        if job.state != "completed":
            apply_status(generation=generation, job=job)
            return
        if job.error:
            code, message = describe_model_error(
                None, {"detail": job.error, "error_type": job.error_type}
            )
            fail(generation_id=generation.pk, code=code, message=message)
            return
        result = gateway.result(request_id=generation.fal_request_id)
    except FalJobFailed as exc:
        fail(generation_id=generation.pk, code=exc.code, message=exc.message)
        return
    except FalRejected as exc:
        fail(generation_id=generation.pk, code="upstream_error", message=exc.message)
        return
    except FalError as exc:
        Generation.objects.filter(pk=generation.pk, status__in=Generation.IN_FLIGHT).update(
            next_poll_at=timezone.now() + timedelta(seconds=5)
        )
        logger.info("event=fal_poll_retry generation=%s reason=%s", generation.pk, exc)
        return
    _record_video_url(generation, result.video_url)


def refresh_from_fal(*, generation: Generation) -> Generation:
    """Check one generation with fal now (staff action); no-op once it has ended."""
    generation.refresh_from_db()
    if generation.status in (Status.QUEUED, Status.RUNNING) and generation.fal_request_id:
        if generation.fal_video_url:
            finish(generation_id=generation.pk)
        else:
            _follow(generation)
        generation.refresh_from_db()
    return generation


# --- Finishing: copy the video, then capture ---------------------------------------------------


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


# --- Webhooks ------------------------------------------------------------------------------


def apply_webhook(*, generation_id: UUID, payload: dict[str, Any]) -> str:
    """Apply fal's (verified) webhook. Returns what happened, for the log."""
    generation = Generation.objects.filter(pk=generation_id).first()
    if generation is None:
        return "unknown_generation"
    if generation.is_final:
        return "already_final"
    request_id = str(payload.get("request_id") or "")[:100]
    if request_id and not generation.fal_request_id:
        # The webhook beat the submit's response (or followed a submit whose outcome was
        # unknown): adopt its job. A submit still under way will find its own job surplus.
        Generation.objects.filter(
            pk=generation.pk,
            fal_request_id="",
            status__in=(Status.PENDING, Status.SUBMITTING),
        ).update(
            fal_request_id=request_id,
            status=Status.QUEUED,
            submitted_at=timezone.now(),
            lease_until=None,
        )
    elif request_id and request_id != generation.fal_request_id:
        logger.warning(
            "event=webhook_other_request generation=%s request=%s known=%s",
            generation.pk,
            request_id,
            generation.fal_request_id,
        )
    if payload.get("status") == "OK":
        video = ((payload.get("payload") or {}).get("video")) or {}
        if not video.get("url"):
            fail(generation_id=generation.pk, code="upstream_error", message="fal sent no video.")
            return "failed"
        _record_video_url(generation, str(video["url"]))
        return "finishing"
    body = payload.get("payload") or {}
    status_code = _status_code_from(str(payload.get("error") or ""))
    if not isinstance(body, dict) or not body.get("detail"):
        body = {"detail": payload.get("error") or "fal reported an error."}
    code, message = describe_model_error(status_code, body)
    fail(generation_id=generation.pk, code=code, message=message)
    return "failed"


def _status_code_from(error: str) -> int | None:
    digits = "".join(ch for ch in error.rsplit(":", 1)[-1] if ch.isdigit())
    return int(digits) if digits else None


# --- The sweep -------------------------------------------------------------------------------


@dataclass
class SweepReport:
    dispatched: int = 0
    polled: int = 0
    expired: int = 0
    in_flight: int = 0
    next_due: datetime | None = None


SWEEP_BATCH = 200


def _expire(generation: Generation) -> None:
    """Past its deadline: one last look at fal, then fail and release."""
    if generation.fal_request_id and not generation.fal_video_url:
        _follow(generation)
        generation.refresh_from_db()
        if generation.is_final or generation.fal_video_url:
            return
        enqueue("cancel_on_fal", generation.fal_request_id)
    elif generation.fal_video_url:
        # fal finished in time and only the copy is pending (or failed and waits for
        # its retry): dispatch it; the copy's own failure limit ends it otherwise.
        _dispatch(generation, "finish")
        return
    fail(
        generation_id=generation.pk,
        code="timeout",
        message="The video was not ready in time; your credits were returned.",
    )


def sweep(*, batch: int = SWEEP_BATCH) -> SweepReport:
    """One pass over the in-flight generations that are due: dispatch submits and video
    copies, poll fal for the rest, expire the overdue. Each step is idempotent."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    report = SweepReport()
    now = timezone.now()
    due = list(
        Generation.objects.in_flight()
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by(F("next_poll_at").asc(nulls_first=True))[:batch]
    )
    to_poll: list[Generation] = []
    for generation in due:
        if generation.deadline_at and generation.deadline_at < now:
            _expire(generation)
            report.expired += 1
        elif generation.fal_video_url:
            _dispatch(generation, "finish")
            report.dispatched += 1
        elif generation.fal_request_id:
            to_poll.append(generation)
        else:
            _dispatch(generation, "submit")
            report.dispatched += 1

    def follow(generation: Generation) -> None:
        try:
            _follow(generation)
        finally:
            connection.close()  # this thread's own connection

    if to_poll:
        if len(to_poll) == 1 or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            for generation in to_poll:
                _follow(generation)
        else:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(follow, to_poll))
        report.polled = len(to_poll)

    remaining = Generation.objects.in_flight().aggregate(
        count=Count("pk"), next_poll=Min("next_poll_at"), lease_end=Min("lease_until")
    )
    report.in_flight = remaining["count"]
    due_times = [t for t in (remaining["next_poll"], remaining["lease_end"]) if t is not None]
    report.next_due = min(due_times) if due_times else None
    return report


def _dispatch(generation: Generation, task: str) -> None:
    Generation.objects.filter(pk=generation.pk).update(next_poll_at=timezone.now() + DISPATCH_GRACE)
    enqueue(task, generation.pk)


def in_flight_exists() -> bool:
    return Generation.objects.in_flight().exists()
