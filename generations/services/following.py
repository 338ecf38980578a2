"""Following a job on fal: status polls, fal's webhooks, staff's "check now"."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from generations.dispatch import DISPATCH_GRACE, enqueue
from generations.fal import (
    FalError,
    FalJobFailed,
    FalRejected,
    JobStatus,
    describe_model_error,
    get_gateway,
)
from generations.models import Generation
from generations.services.finishing import finish
from generations.services.settlement import fail

logger = logging.getLogger(__name__)

Status = Generation.Status


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
