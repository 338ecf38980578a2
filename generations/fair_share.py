"""Fair share of fal's slots: our own queue in front of fal, and who goes next.

A fal account runs a limited number of jobs at once and queues the rest first come, first
served, so one user's burst would delay everyone. With `FAL_MAX_CONCURRENCY = N` (0: no
limit, nothing here applies) an accepted generation waits in our own queue (internal status
`waiting`, shown as `queued` with our own `queue_position`) and is granted a slot (moved to
`pending`, its submit enqueued) only while fewer than N of ours are at fal.

* At fal = in flight, not waiting, and fal has not finished it (no `fal_video_url`): a
  granted generation holds its slot from the grant until fal finished it, failed or it was
  canceled, through retries and unknown outcomes, so we never hold more than N jobs at fal.
* One grant at a time: `fill_slots` counts the slots in use and grants the free ones inside
  one transaction holding the `FalAccount` row lock (PostgreSQL: SELECT ... FOR UPDATE;
  SQLite: the write transaction is BEGIN IMMEDIATE), so workers racing on any broker never
  grant more than N.
* Who goes next (`FAL_QUEUE_POLICY`): `fair` is deficit round robin across the users with
  generations waiting (Shreedhar & Varghese, 1995), in user id order; each turn adds
  QUANTUM_SECONDS x the user's `share_weight` seconds of video to the user's deficit, and the
  user's oldest waiting generations start while their seconds fit in it. A user with 50
  waiting gets one turn like a user with 1, and weight 2 starts twice the video per turn.
  The round's memory (deficits, whose turn) is `FairShareTurn`, written only here, under
  the same lock. `fifo`, for comparison: oldest accepted first.
* A freed slot is refilled at once: the settlement of a final status and the news that fal
  finished a video call `slot_freed`, which fills after commit; the sweep fills on every
  pass, for whatever that missed (a worker that died between the commit and the fill).

The in-flight cap per user (MAX_IN_FLIGHT_PER_USER) counts waiting generations too: it is
checked at accept, as without a limit.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from generations import states
from generations.dispatch import DISPATCH_GRACE, enqueue
from generations.models import FairShareTurn, FalAccount, Generation

logger = logging.getLogger(__name__)

Status = states.Status
Turn = FairShareTurn.Turn

# Seconds of video one turn of weight 1 may start: the longest Veo 3.1 video, so every turn
# starts at least one generation.
QUANTUM_SECONDS = 8
FIFO = "fifo"


def max_concurrency() -> int:
    """How many of our jobs may be at fal at once; 0 = no limit of ours."""
    return max(0, int(settings.FAL_MAX_CONCURRENCY or 0))


def status_at_accept() -> Status:
    """Where an accepted generation starts: in our queue with a limit, else pending."""
    return Status.WAITING if max_concurrency() else Status.PENDING


def at_fal():
    """Our generations that hold one of fal's slots (see the module's docstring)."""
    return Generation.objects.in_flight().exclude(status=Status.WAITING).filter(fal_video_url="")


def slots_in_use() -> int:
    return at_fal().count()


# --- Who goes next -----------------------------------------------------------------------


@dataclass
class Round:
    """The deficit round robin's state, as `FairShareTurn` keeps it between grants."""

    deficits: dict[int, int] = field(default_factory=dict)  # user id -> seconds
    cursor: int | None = None  # the user whose turn it is now, or was last
    visiting: bool = False  # the cursor's turn goes on (its quantum already added)


@dataclass(frozen=True)
class Waiting:
    pk: UUID
    owner_id: int
    seconds: int
    weight: int = 1  # its owner's share_weight


def _seconds(duration: str) -> int:
    digits = "".join(ch for ch in duration if ch.isdigit())
    return max(int(digits or 0), 1)


def drr_order(
    queues: dict[int, deque[Waiting]],
    state: Round,
    *,
    limit: int,
) -> list[Waiting]:
    """Up to `limit` generations in the order deficit round robin starts them, from
    `state`, which is moved on (the caller keeps it or throws it away). `queues` holds each
    user's waiting generations, oldest first (each carries its owner's weight), and is
    consumed. Pure: no database."""
    order: list[Waiting] = []
    ring = sorted(user for user, queue in queues.items() if queue)
    if not ring or limit <= 0:
        return order
    remaining = sum(len(queues[user]) for user in ring)
    if state.visiting and state.cursor in queues and queues[state.cursor]:
        index, fresh = ring.index(state.cursor), False
    else:
        after = state.cursor if state.cursor is not None else -1
        index, fresh = bisect.bisect_right(ring, after) % len(ring), True
    while len(order) < limit:
        user = ring[index]
        queue = queues[user]
        if queue:
            if fresh:
                quantum = QUANTUM_SECONDS * queue[0].weight
                state.deficits[user] = state.deficits.get(user, 0) + quantum
            while queue and queue[0].seconds <= state.deficits[user] and len(order) < limit:
                job = queue.popleft()
                state.deficits[user] -= job.seconds
                order.append(job)
                remaining -= 1
            if not queue:
                state.deficits[user] = 0  # an emptied queue keeps no credit (DRR)
            state.cursor = user
            if queue and queue[0].seconds <= state.deficits[user]:
                state.visiting = True  # stopped by `limit` mid-turn: the turn goes on
                return order
        if not remaining:
            break
        index, fresh = (index + 1) % len(ring), True
    state.visiting = False
    return order


def _waiting() -> list[Waiting]:
    """Every waiting generation, oldest accepted first (one query, on gen_waiting_queue)."""
    rows = (
        Generation.objects.filter(status=Status.WAITING)
        .order_by("created_at", "id")
        .values_list("pk", "owner_id", "duration", "owner__share_weight")
    )
    return [
        Waiting(pk, owner_id, _seconds(duration), max(weight or 1, 1))
        for pk, owner_id, duration, weight in rows
    ]


def _queues(waiting: list[Waiting]) -> dict[int, deque[Waiting]]:
    """Each user's waiting generations, oldest first."""
    queues: dict[int, deque[Waiting]] = {}
    for job in waiting:
        queues.setdefault(job.owner_id, deque()).append(job)
    return queues


def _load_round() -> Round:
    state = Round()
    for turn in FairShareTurn.objects.all():
        state.deficits[turn.user_id] = turn.deficit_seconds
        if turn.turn:
            state.cursor, state.visiting = turn.user_id, turn.turn == Turn.VISITING
    return state


def _save_round(state: Round, users: Iterable[int]) -> None:
    """Keep the round for the users still waiting (a user who waits no more has no credit
    left), and the cursor even when its user waits no more (the ring goes on after it)."""
    users = set(users)
    if state.cursor is not None:
        users.add(state.cursor)
    FairShareTurn.objects.exclude(user_id__in=users).delete()
    FairShareTurn.objects.exclude(turn=Turn.NONE).update(turn=Turn.NONE)
    rows = [
        FairShareTurn(
            user_id=user,
            deficit_seconds=max(state.deficits.get(user, 0), 0),
            turn=(Turn.VISITING if state.visiting else Turn.VISITED)
            if user == state.cursor
            else Turn.NONE,
        )
        for user in sorted(users)
    ]
    FairShareTurn.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["deficit_seconds", "turn"],
    )


def queue_positions() -> dict[UUID, int]:
    """Every waiting generation's place in our queue (0 = the next to start), in the order
    the policy will grant slots from now on (nothing is written)."""
    waiting = _waiting()
    if settings.FAL_QUEUE_POLICY == FIFO:
        order = waiting
    else:
        queues = _queues(waiting)
        order = drr_order(queues, _load_round(), limit=len(waiting))
    return {job.pk: position for position, job in enumerate(order)}


# --- Granting slots ----------------------------------------------------------------------


def fill_slots() -> list[UUID]:
    """Grant the free slots at fal to the next waiting generations (the policy's order):
    each moves to `pending` with a fresh deadline, and its submit is enqueued after commit.
    Safe to call from anywhere, any number of times, concurrently: one grant at a time,
    under the FalAccount row lock. Returns the ids granted."""
    if not Generation.objects.filter(status=Status.WAITING).exists():
        return []
    limit = max_concurrency()
    FalAccount.objects.get_or_create(pk=1)
    granted: list[UUID] = []
    with transaction.atomic():
        FalAccount.objects.select_for_update().filter(pk=1).first()  # the one grant lock
        in_line = _waiting()
        waiting = len(in_line)
        free = limit - slots_in_use() if limit else waiting
        if free <= 0 or not waiting:
            return []
        if settings.FAL_QUEUE_POLICY == FIFO:
            chosen = in_line[:free]
        else:
            queues = _queues(in_line)
            state = _load_round()
            users = list(queues)
            chosen = drr_order(queues, state, limit=free)
            _save_round(state, (user for user in users if queues[user]))
        now = timezone.now()
        deadline = now + timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS)
        for job in chosen:
            # The wait in our queue is not fal's time: the deadline starts with the slot.
            if states.transition(
                job.pk,
                to=Status.PENDING,
                sources=[Status.WAITING],
                next_poll_at=now + DISPATCH_GRACE,
                deadline_at=deadline,
            ):
                granted.append(job.pk)
        if granted:
            transaction.on_commit(lambda: _enqueue_submits(granted))
    if granted:
        logger.info(
            "event=fal_slots_granted count=%s waiting=%s limit=%s",
            len(granted),
            waiting - len(granted),
            limit,
        )
    return granted


def _enqueue_submits(granted: list[UUID]) -> None:
    for pk in granted:
        enqueue("submit", pk)


def _fill_after_commit() -> None:
    try:
        fill_slots()
    except Exception:  # the sweep fills on its next pass
        logger.exception("event=fal_slot_fill_crashed")


def slot_freed() -> None:
    """A generation left fal (finished, failed, canceled): refill its slot as soon as the
    current transaction commits (at once outside one). A no-op without a limit (the sweep
    still sends what waits from before the limit was lifted)."""
    if max_concurrency():
        transaction.on_commit(_fill_after_commit)
