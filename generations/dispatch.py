"""Putting work on django-q2, and the self-re-arming status sweep.

django-q2's scheduler ticks every 30 s, too slow to notice within seconds that fal has
finished. So the sweep re-enqueues itself while generations are in flight: one chain at a
time, held by a `WorkerLease` row whose holder is the chain's token. If the worker running
the chain dies, the lease expires and the next enqueue (an accept, a submit, or the
minutely schedule) starts a new chain.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.conf import Conf
from django_q.tasks import async_task

from generations.models import WorkerLease
from generations.tasks import TASKS

logger = logging.getLogger(__name__)

# A dispatched task should have started by then; past it, the sweep dispatches again.
DISPATCH_GRACE = timedelta(seconds=30)
SWEEP_LEASE = "generations.sweep"
SWEEP_LEASE_SECONDS = 30  # longer than one sweep pass, its pause and the enqueue gap
SWEEP_MIN_PAUSE_SECONDS = 0.5  # between passes while work is in flight...
SWEEP_MAX_PAUSE_SECONDS = 5.0  # ...until the next generation is due, within these bounds


def enqueue(name: str, *args, **kwargs) -> None:
    """Enqueue a task by name with ids as arguments (never model instances)."""
    args = tuple(str(a) for a in args)
    label = f"{name}-{args[0]}" if args else name
    async_task(TASKS[name], *args, task_name=label[:100], group=name, **kwargs)


def _take_lease(token: str) -> bool:
    """Take (or renew) the sweep lease for `token`; False if another chain holds it."""
    now = timezone.now()
    expires = now + timedelta(seconds=SWEEP_LEASE_SECONDS)
    if (
        WorkerLease.objects.filter(name=SWEEP_LEASE)
        .filter(Q(holder=token) | Q(expires_at__lt=now) | Q(holder=""))
        .update(holder=token, expires_at=expires)
    ):
        return True
    try:
        with transaction.atomic():
            WorkerLease.objects.create(name=SWEEP_LEASE, holder=token, expires_at=expires)
        return True
    except IntegrityError:
        return False


def _drop_lease(token: str) -> None:
    WorkerLease.objects.filter(name=SWEEP_LEASE, holder=token).update(holder="")


def run_sweep(token: str | None = None) -> None:
    """One sweep pass, then re-arm while anything is in flight (one chain at a time)."""
    from generations import services

    token = token or uuid.uuid4().hex
    if not _take_lease(token):
        return  # another chain is sweeping
    report = services.sweep()
    if Conf.SYNC:
        _drop_lease(token)  # inline (tests): one pass, no chain
        return
    if report.in_flight == 0:
        _drop_lease(token)
        # An accept may have committed between the count and the drop: look once more.
        if not services.in_flight_exists() or not _take_lease(token):
            return
    pause = SWEEP_MAX_PAUSE_SECONDS
    if report.next_due is not None:
        until_due = (report.next_due - timezone.now()).total_seconds()
        pause = min(max(until_due, SWEEP_MIN_PAUSE_SECONDS), SWEEP_MAX_PAUSE_SECONDS)
    time.sleep(pause)
    if not _take_lease(token):
        return  # the lease lapsed and another chain took over
    async_task(TASKS["sweep"], token, task_name="sweep-chain", group="sweep")
