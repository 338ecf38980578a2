"""Workers are never all busy with callbacks.

A delivery holds two database leases while it POSTs (`WorkerLease` rows, so every process
and broker agree): one of `CALLBACK_CONCURRENCY` cluster slots (`callbacks.slot.<n>`) and
one of `CALLBACKS_PER_USER` slots of its owner (`callbacks.user.<user id>.<n>`). A delivery
that finds either full does not wait (`delivery` schedules it again a little later), so
submits, sweeps and finishes always find a worker, and a user with hundreds of finished
generations takes turns with everyone else instead of filling the slots. A lease outlives
the attempt's deadline by `SLOT_MARGIN` and expires by itself if its worker dies. Leases
were chosen over counting recent `CallbackAttempt` rows because a count then insert is
racy across processes, while taking a lease is one conditional UPDATE or one INSERT on a
primary key.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from generations.models import WorkerLease

CLUSTER_SLOT = "callbacks.slot."
USER_SLOT = "callbacks.user."
# A slot's lease outlives the attempt's deadline by this much (building the payload,
# recording the attempt); past it, the slot of a worker that died is free again.
SLOT_MARGIN = timedelta(seconds=30)


def _take_lease(name: str, holder: str) -> bool:
    """Take the lease `name` if it is free or expired (one UPDATE, or one INSERT)."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS) + SLOT_MARGIN
    if (
        WorkerLease.objects.filter(name=name)
        .filter(Q(expires_at__lt=now) | Q(holder=""))
        .update(holder=holder, expires_at=expires)
    ):
        return True
    try:
        with transaction.atomic():
            WorkerLease.objects.create(name=name, holder=holder, expires_at=expires)
    except IntegrityError:
        return False
    return True


def _take_one(prefix: str, count: int, holder: str) -> str | None:
    for n in range(max(count, 1)):
        if _take_lease(f"{prefix}{n}", holder):
            return f"{prefix}{n}"
    return None


def take_slots(*, owner_id: int, holder: str) -> list[str] | None:
    """One of the owner's slots, then one of the cluster's; None (holding nothing) if
    either is full. The owner's first: a user's backlog then never ties up a cluster slot."""
    mine = _take_one(f"{USER_SLOT}{owner_id}.", settings.CALLBACKS_PER_USER, holder)
    if mine is None:
        return None
    shared = _take_one(CLUSTER_SLOT, settings.CALLBACK_CONCURRENCY, holder)
    if shared is None:
        release_slots([mine], holder=holder)
        return None
    return [mine, shared]


def release_slots(slots: list[str], *, holder: str) -> None:
    WorkerLease.objects.filter(name__in=slots, holder=holder).delete()
