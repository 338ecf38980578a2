"""The sweep: one idempotent pass over the in-flight generations that are due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from generations.dispatch import DISPATCH_GRACE, enqueue
from generations.models import Generation
from generations.services.following import _follow
from generations.services.settlement import fail


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
