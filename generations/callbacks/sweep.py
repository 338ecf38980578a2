"""Recovering callbacks that a broker or a worker lost.

A Redis broker is at-most-once, and a worker can die mid-attempt. `sweep_callbacks`, run
periodically, re-enqueues a delivery whose next attempt is overdue by `SWEEP_GRACE` with no
schedule pending for it. The attempt claim (`delivery`) keeps this from ever sending an
attempt twice.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from generations.callbacks.delivery import MAX_ATTEMPTS, retry_delay, send_attempt
from generations.models import Generation

logger = logging.getLogger(__name__)

# How late a due attempt may be before the sweep re-enqueues it (the scheduler ticks every
# 30 s, and an attempt takes at most CALLBACK_TIMEOUT_SECONDS).
SWEEP_GRACE = timedelta(minutes=3)
# Deliveries older than this are not swept any more (the last retry is ~3 h after the end).
SWEEP_HORIZON = timedelta(days=1)


def sweep_callbacks(*, batch: int = 100) -> int:
    """Re-enqueue callback deliveries that should have had their next attempt by now but
    have none pending (lost task, crashed worker). Returns how many were enqueued. Cheap
    to run every minute: one query over the recent undelivered callbacks."""
    from django_q.models import Schedule

    now = timezone.now()
    candidates = (
        Generation.objects.filter(
            status__in=Generation.FINAL,
            callback_delivered_at__isnull=True,
            completed_at__gte=now - SWEEP_HORIZON,
        )
        .exclude(callback_url="")
        .annotate(
            sent=Count("callback_attempts"),
            last_attempt_at=Max("callback_attempts__created_at"),
            delivered=Count("callback_attempts", filter=Q(callback_attempts__succeeded=True)),
        )
        .filter(delivered=0, sent__lt=MAX_ATTEMPTS)
        .order_by("completed_at")
        .values_list("pk", "sent", "last_attempt_at", "completed_at")[:batch]
    )
    enqueued = 0
    for pk, attempts, last_attempt_at, completed_at in candidates:
        following = attempts + 1
        since = last_attempt_at or completed_at
        delay = timedelta(seconds=retry_delay(following)) if attempts else timedelta(0)
        if since + delay + SWEEP_GRACE > now:
            continue
        pending = Q(name=f"callback:{pk}:{following}") | Q(
            name__startswith=f"callback:{pk}:{following}:later:"
        )
        if Schedule.objects.filter(pending).exists():
            continue  # the scheduler has it (a retry or a deferral); it may only be late
        send_attempt(pk, following)
        enqueued += 1
    if enqueued:
        logger.info("event=callbacks_swept enqueued=%s", enqueued)
    return enqueued
