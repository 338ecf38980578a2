"""Following a job on fal: status polls, fal's webhooks, staff's "check now"."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from generations import fair_share, states
from generations.dispatch import DISPATCH_GRACE, enqueue
from generations.fal import (
    FalAccountProblem,
    FalError,
    FalJobFailed,
    FalRejected,
    JobStatus,
    describe_model_error,
    get_gateway,
)
from generations.fal_webhooks import WebhookNotOurs
from generations.models import Generation
from generations.services import account
from generations.services.finishing import finish
from generations.services.settlement import fail_for_fal
from generations.services.submission import is_surplus_job, job_on_fal
from veoproject import site_urls
from veoproject.model_fields import max_length

logger = logging.getLogger(__name__)

Status = Generation.Status


def _poll_delay(generation: Generation, job: JobStatus) -> timedelta:
    """How soon to ask fal again. Webhooks are the fast path when the site is public;
    without them, status should lag fal by a few seconds at most."""
    if site_urls.is_public():
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
        updated = states.transition(
            generation.pk,
            to=Status.RUNNING,
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
    fair_share.slot_freed()  # fal is done with it: its slot goes to the next in line
    enqueue("finish", generation.pk)


# What one look at fal found (`follow`'s answer, for the sweep).
ANSWERED = "answered"  # fal answered with our key, whatever the job's state
CREDENTIALS = "credentials"  # fal refused our account: the generation stays in flight
UNREAD = "unread"  # no usable answer (busy, unreachable, or one we could not read)

RETRY_DELAY = timedelta(seconds=5)
UNREADABLE_DELAY_MIN = timedelta(seconds=5)
UNREADABLE_DELAY_MAX = timedelta(minutes=2)


def _poll_again(generation: Generation, delay: timedelta) -> None:
    Generation.objects.filter(pk=generation.pk, status__in=Generation.IN_FLIGHT).update(
        next_poll_at=timezone.now() + delay
    )


def _unreadable_delay(generation: Generation) -> timedelta:
    """Back off from a job whose answers we cannot read: a tenth of its age, 5 s to 2 min
    (its deadline still ends it)."""
    age = timezone.now() - (generation.submitted_at or generation.created_at)
    return min(max(age / 10, UNREADABLE_DELAY_MIN), UNREADABLE_DELAY_MAX)


def follow(generation: Generation) -> str:
    """Ask fal about one generation and act on the answer (a sweep step, or staff's
    "check now"). Never raises: whatever goes wrong with this one generation is logged and
    retried later, so the sweep goes on with the others. Returns what it found
    (ANSWERED, CREDENTIALS or UNREAD)."""
    try:
        return _ask_fal(generation)
    except Exception:
        # An answer fal-client cannot parse (an unknown status: ValueError; a missing
        # field: KeyError; a non-JSON 2xx: JSONDecodeError), or a bug of ours.
        logger.exception("event=fal_follow_crashed generation=%s", generation.pk)
        try:
            _poll_again(generation, _unreadable_delay(generation))
        except Exception:
            logger.exception("event=fal_follow_backoff_failed generation=%s", generation.pk)
        return UNREAD


def _ask_fal(generation: Generation) -> str:
    gateway = get_gateway()
    try:
        job = gateway.status(request_id=generation.fal_request_id)
        if job.state != "completed":
            apply_status(generation=generation, job=job)
            return ANSWERED
        if job.error:
            code, raw = describe_model_error(
                None, {"detail": job.error, "error_type": job.error_type}
            )
            fail_for_fal(generation_id=generation.pk, code=code, raw=raw)
            return ANSWERED
        result = gateway.result(request_id=generation.fal_request_id)
    except FalJobFailed as exc:
        fail_for_fal(generation_id=generation.pk, code=exc.code, raw=exc.raw, message=exc.message)
        return ANSWERED
    except FalAccountProblem as exc:
        # Our key or our account, not this generation: fal may still be rendering it, so
        # it stays in flight (never failed, never refunded); staff see the banner.
        delay = account.credentials_refused(message=exc.raw)
        _poll_again(generation, delay)
        logger.error(
            "event=fal_credentials_refused generation=%s status=%s retry_in=%s raw=%r",
            generation.pk,
            exc.status_code,
            int(delay.total_seconds()),
            exc.raw[:500],
        )
        return CREDENTIALS
    except FalRejected as exc:  # e.g. a job fal does not know (any more)
        fail_for_fal(generation_id=generation.pk, code="upstream_error", raw=exc.raw)
        return ANSWERED
    except FalError as exc:
        _poll_again(generation, RETRY_DELAY)
        logger.info("event=fal_poll_retry generation=%s reason=%s", generation.pk, exc.raw)
        return UNREAD
    _record_video_url(generation, result.video_url)
    return ANSWERED


def refresh_from_fal(*, generation: Generation) -> Generation:
    """Check one generation with fal now (staff action); no-op once it has ended."""
    generation.refresh_from_db()
    if (generation.is_queued or generation.is_running) and generation.fal_request_id:
        if generation.fal_video_url:
            finish(generation_id=generation.pk)
        elif follow(generation) == ANSWERED:
            account.credentials_recovered()
        generation.refresh_from_db()
    return generation


def apply_webhook(
    *, generation_id: UUID, payload: dict[str, Any], request_id: str, user_id: str = ""
) -> str:
    """Apply fal's webhook, verified and carrying this generation's URL token. Returns what
    happened, for the log.

    `request_id` is the one fal signed: it must be the body's and, once the generation
    knows its job, that job's (raise WebhookNotOurs otherwise; nothing changes), except
    for a job of ours we know to be surplus (`is_surplus_job`): acknowledged, ignored. A
    generation whose submit had no answer adopts the job (the URL token proves fal got
    it from our submit of this generation).
    """
    if not request_id or str(payload.get("request_id") or "") != request_id:
        raise WebhookNotOurs("the signed request id is not the body's request_id")
    if len(request_id) > max_length(Generation, "fal_request_id"):
        raise WebhookNotOurs("the request id is too long to be fal's")
    generation = Generation.objects.filter(pk=generation_id).first()
    if generation is None:
        return "unknown_generation"
    if not generation.fal_request_id and not generation.is_final:
        _adopt_job(generation, request_id)
        generation.refresh_from_db()
    if generation.fal_request_id != request_id:
        if generation.is_final and not generation.fal_request_id:
            return "already_final"  # it ended before any job was known: nothing to move
        if is_surplus_job(generation, request_id):
            # Our own extra job (a resubmit's, found surplus and canceled): acknowledged,
            # or fal would retry it for hours; we follow the generation's job.
            logger.info(
                "event=fal_webhook_surplus generation=%s request=%s recorded=%s",
                generation.pk,
                request_id,
                generation.fal_request_id,
            )
            return "surplus"
        # Another job, one we cannot tell is ours (see the webhook view): refused.
        raise WebhookNotOurs(
            f"request {request_id} is not the generation's ({generation.fal_request_id!r})"
        )
    account.note_webhook_user_id(user_id)
    if generation.is_final:
        return "already_final"
    status = payload.get("status")
    video = _dict(_dict(payload.get("payload")).get("video"))
    if status == "OK" and video.get("url"):
        _record_video_url(generation, str(video["url"]))
        return "finishing"
    if status != "ERROR":
        # fal could not serialize the output (`payload` null, `payload_error` says why), or
        # says something we do not know: the job may well have a video, and the result
        # endpoint is the one to ask. Failing here would refund a job fal bills.
        reason = payload.get("payload_error") or f"status {status!r} without a video"
        _poll_now(generation, reason=str(reason)[:200])
        return "polling"
    body = payload.get("payload") or {}
    status_code = _status_code_from(str(payload.get("error") or ""))
    if not isinstance(body, dict) or not body.get("detail"):
        body = {"detail": payload.get("error") or "fal reported an error."}
    code, raw = describe_model_error(status_code, body)
    fail_for_fal(generation_id=generation.pk, code=code, raw=raw)
    return "failed"


def _adopt_job(generation: Generation, request_id: str) -> None:
    """The webhook beat the submit's response (or followed a submit whose outcome was
    unknown): adopt its job, recorded as a submit's answer records it (its fal cost
    included). A submit still under way will find its own job surplus."""
    states.transition(
        generation.pk,
        to=Status.QUEUED,
        sources=[Status.PENDING, Status.SUBMITTING],
        where=Q(fal_request_id=""),
        **job_on_fal(generation, request_id),
    )


def _poll_now(generation: Generation, *, reason: str) -> None:
    _poll_again(generation, timedelta(0))
    logger.info("event=fal_webhook_without_video generation=%s reason=%r", generation.pk, reason)
    enqueue("sweep")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _status_code_from(error: str) -> int | None:
    digits = "".join(ch for ch in error.rsplit(":", 1)[-1] if ch.isdigit())
    return int(digits) if digits else None
