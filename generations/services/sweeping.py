"""The sweep: one idempotent pass over the in-flight generations that are due.

One generation's trouble never stalls the others: each step is caught and logged with its
generation id, and the pass starts no new call to fal after SWEEP_PASS_BUDGET_SECONDS (the
rest stay due for the next pass), so a pass ends well within django-q2's task timeout (the
arithmetic is in `generations.fal`, "Time budget").

While dispatch is paused (`services.account`), generations fal has not accepted are left
out of the pass, except one probe submit per probe interval.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from generations import fair_share
from generations.dispatch import DISPATCH_GRACE, enqueue
from generations.models import Generation
from generations.services import account
from generations.services.following import ANSWERED, CREDENTIALS, follow
from generations.services.settlement import fail
from generations.services.submission import submit

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    dispatched: int = 0
    polled: int = 0
    expired: int = 0
    in_flight: int = 0
    next_due: datetime | None = None
    probed: int = 0  # probe submits while dispatch is paused (0 or 1)
    deferred: int = 0  # due, left for the next pass (the pass ran out of time)
    granted: int = 0  # waiting generations given a slot at fal (`fair_share`)


SWEEP_BATCH = 200
SWEEP_PASS_BUDGET_SECONDS = 20.0  # no new look at fal after this; see generations.fal


def _expire(generation: Generation) -> str | None:
    """Past its deadline: one last look at fal, then fail and release.

    Not while fal refuses our credentials: fal may still be rendering the video, and the
    user must be neither failed nor refunded for our key. The generation stays in flight
    (polls back off, staff see the banner) and the look that decides is the first one fal
    answers again. A generation whose answers cannot be read (fal down, a malformed answer)
    does expire. Returns what the look at fal found, if there was one."""
    found = None
    if generation.fal_request_id and not generation.fal_video_url:
        found = follow(generation)
        if found == CREDENTIALS:
            logger.error(
                "event=deadline_passed_credentials_refused generation=%s deadline=%s",
                generation.pk,
                generation.deadline_at.isoformat() if generation.deadline_at else "",
            )
            return found
        generation.refresh_from_db()
        if generation.is_final or generation.fal_video_url:
            return found
        enqueue("cancel_on_fal", generation.fal_request_id)
    elif generation.fal_video_url:
        # fal finished in time and only the copy is pending (or failed and waits for
        # its retry): dispatch it; the copy's own failure limit ends it otherwise.
        _dispatch(generation, "finish")
        return found
    fail(
        generation_id=generation.pk,
        code="timeout",
        message="The video was not ready in time; nothing was charged.",
    )
    return found


def sweep(*, batch: int = SWEEP_BATCH) -> SweepReport:
    """One pass over the in-flight generations that are due: dispatch submits and video
    copies, poll fal for the rest, expire the overdue. Each step is idempotent."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    report = SweepReport()
    started = time.monotonic()
    now = timezone.now()
    fal_account = account.snapshot()
    paused = fal_account.dispatch_paused
    in_flight = Generation.objects.in_flight()
    if paused:
        in_flight = in_flight.exclude(account.AWAITING_SUBMIT)
    due = list(
        in_flight.exclude(status=Generation.Status.WAITING)  # our queue: `fill_slots` only
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by(F("next_poll_at").asc(nulls_first=True))[:batch]
    )
    if paused and account.claim_probe(fal_account):
        report.probed = _probe()

    def in_time() -> bool:
        return time.monotonic() - started < SWEEP_PASS_BUDGET_SECONDS

    found: list[str | None] = []
    to_poll: list[Generation] = []
    for generation in due:
        try:
            if generation.deadline_at and generation.deadline_at < now:
                if not in_time():
                    report.deferred += 1
                    continue
                found.append(_expire(generation))
                report.expired += 1
            elif generation.fal_video_url:
                _dispatch(generation, "finish")
                report.dispatched += 1
            elif generation.fal_request_id:
                to_poll.append(generation)
            else:
                _dispatch(generation, "submit")
                report.dispatched += 1
        except Exception:
            logger.exception("event=sweep_step_crashed generation=%s", generation.pk)

    def follow_in_time(generation: Generation) -> str | None:
        if not in_time():
            return None  # still due: the next pass takes it
        return follow(generation)  # never raises

    def follow_in_thread(generation: Generation) -> str | None:
        try:
            return follow_in_time(generation)
        finally:
            connection.close()  # this thread's own connection

    if to_poll:
        if len(to_poll) == 1 or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            polled = [follow_in_time(generation) for generation in to_poll]
        else:
            with ThreadPoolExecutor(max_workers=8) as pool:
                polled = list(pool.map(follow_in_thread, to_poll))
        found.extend(polled)
        report.polled = sum(1 for outcome in polled if outcome is not None)
        report.deferred += len(polled) - report.polled
    if report.deferred:
        logger.warning("event=sweep_pass_out_of_time deferred=%s", report.deferred)
    if fal_account.credentials_failing_since and ANSWERED in found:
        account.credentials_recovered()

    remaining = in_flight.aggregate(
        count=Count("pk"),
        next_poll=Min("next_poll_at"),
        lease_end=Min("lease_until"),
        waiting=Count("pk", filter=Q(status=Generation.Status.WAITING)),
    )
    report.in_flight = remaining["count"]
    if remaining["waiting"]:
        try:  # free slots at fal to our queue's next (a fill missed after a slot was freed)
            report.granted = len(fair_share.fill_slots())
        except Exception:
            logger.exception("event=sweep_slot_fill_crashed")
    due_times = [t for t in (remaining["next_poll"], remaining["lease_end"]) if t is not None]
    if paused and fal_account.next_probe_at is not None:
        due_times.append(max(fal_account.next_probe_at, now))
    report.next_due = min(due_times) if due_times else None
    return report


def _probe() -> int:
    """While dispatch is paused: submit the oldest waiting generation, once. If fal takes
    it, dispatch resumes (`submit`); if not, the pause goes on, the next probe later."""
    candidate = account.probe_candidate()
    if candidate is None:
        return 0
    logger.info("event=fal_dispatch_probe generation=%s", candidate.pk)
    try:
        submit(generation_id=candidate.pk, probe=True)
    except Exception:
        logger.exception("event=fal_dispatch_probe_crashed generation=%s", candidate.pk)
    return 1


def _dispatch(generation: Generation, task: str) -> None:
    Generation.objects.filter(pk=generation.pk).update(next_poll_at=timezone.now() + DISPATCH_GRACE)
    enqueue(task, generation.pk)


def in_flight_exists() -> bool:
    return Generation.objects.in_flight().exists()
