"""A generation's state machine: its statuses, the one table of allowed moves, and the one
helper that makes a move.

Every status change is `transition(...)`: a conditional UPDATE from the statuses the table
allows into the target (narrowed by the caller if it knows better), so a duplicate
webhook, a late poll, a task delivered twice or two workers racing change nothing the
second time; it says whether it happened. A move the table does not hold is a bug in our
code and raises `IllegalTransition` before touching the database.

The model's questions (`is_final`, `is_cancelable`, `has_playable_video`...) and the sets
the services filter on (`IN_FLIGHT`, `FINAL`, `CANCELABLE`) are read from the table. To
add a status: add it to `Status` and its rows to `TRANSITIONS` (and a migration, for the
database's list of valid statuses).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Status(models.TextChoices):
    # Internal, shown as `queued`: accepted, waiting in our own queue for one of fal's
    # slots (FAL_MAX_CONCURRENCY; the order is `generations.fair_share`'s).
    WAITING = "waiting", "Waiting for a slot"
    PENDING = "pending", "Pending"
    # Internal, shown as `pending`: a submit to fal is under way, or its outcome is unknown.
    SUBMITTING = "submitting", "Submitting"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


# status -> the statuses it may move to. A status with no way out is final.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.WAITING: frozenset(
        {
            Status.PENDING,  # granted one of fal's slots: its submit may go
            Status.FAILED,
            Status.CANCELED,
        }
    ),
    Status.PENDING: frozenset(
        {
            Status.SUBMITTING,  # a worker claims the submit
            Status.QUEUED,  # a webhook of our submit arrived first: its job is adopted
            Status.SUCCEEDED,
            Status.FAILED,
            Status.CANCELED,
        }
    ),
    Status.SUBMITTING: frozenset(
        {
            Status.SUBMITTING,  # its lease expired with no answer: claimed again
            Status.PENDING,  # fal busy, its storage down, or our account refused: retried
            Status.QUEUED,  # fal took the job
            Status.SUCCEEDED,
            Status.FAILED,
            Status.CANCELED,
        }
    ),
    Status.QUEUED: frozenset({Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.CANCELED}),
    # Once fal renders, only fal ends it: it bills the video either way.
    Status.RUNNING: frozenset({Status.SUCCEEDED, Status.FAILED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELED: frozenset(),
}

FINAL: tuple[Status, ...] = tuple(status for status in Status if not TRANSITIONS[status])
IN_FLIGHT: tuple[Status, ...] = tuple(status for status in Status if TRANSITIONS[status])
# What the API and the portal show for an internal status: `submitting` reads as
# `pending`, `waiting` (in our own queue) as `queued`.
SHOWN_AS: dict[Status, Status] = {Status.SUBMITTING: Status.PENDING, Status.WAITING: Status.QUEUED}
PUBLIC_STATUSES: tuple[str, ...] = tuple(s.value for s in Status if s not in SHOWN_AS)


def public(status: Status | str) -> Status:
    """The public status an internal one is shown as."""
    status = Status(status)
    return SHOWN_AS.get(status, status)


def shown_as(public_status: Status | str) -> tuple[Status, ...]:
    """Every status shown as `public_status` (itself included), e.g. to filter by it."""
    return tuple(status for status in Status if public(status) == public_status)


class IllegalTransition(Exception):
    """A status change the table does not allow: a programming error, never a user's."""


def sources_of(target: Status | str) -> tuple[Status, ...]:
    """The statuses the table allows to move into `target`, in declaration order."""
    return tuple(status for status in Status if target in TRANSITIONS[status])


def may_move(source: Status | str, target: Status | str) -> bool:
    return target in TRANSITIONS[Status(source)]


CANCELABLE: tuple[Status, ...] = sources_of(Status.CANCELED)


def transition(
    generation_id: UUID,
    *,
    to: Status,
    sources: Iterable[Status] | None = None,
    where: Q | None = None,
    **fields: Any,
) -> bool:
    """Move one generation into `to`, with `fields` written in the same UPDATE, if it is
    still in one of `sources` (default: every status the table allows into `to`) and
    matches `where`. Returns whether it moved: False means another step got there first.

    Entering a final status stamps `completed_at` and ends the worker's lease and polls.
    Raises IllegalTransition if a source may not move into `to`."""
    from generations.models import Generation

    allowed = sources_of(to)
    if not allowed:
        raise IllegalTransition(f"nothing may move to {to!r} (generations.states)")
    if sources is None:
        sources = allowed
    else:
        sources = tuple(sources)
        refused = [source for source in sources if source not in allowed]
        if refused or not sources:
            raise IllegalTransition(
                f"{', '.join(refused) or 'nothing'} may not move to {to} (generations.states)"
            )
    if to in FINAL:
        fields = {"completed_at": timezone.now(), "lease_until": None, "next_poll_at": None} | (
            fields
        )
    rows = Generation.objects.filter(pk=generation_id, status__in=sources)
    if where is not None:
        rows = rows.filter(where)
    return bool(rows.update(status=to, **fields))
