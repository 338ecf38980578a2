"""Putting work on django-q2, and the self-re-arming status sweep.

django-q2's scheduler ticks every 30 s, too slow to notice within seconds that fal has
finished. So the sweep re-enqueues itself while generations are in flight: one chain at a
time, held by a `WorkerLease` row whose holder is the chain's token, renewed by a heartbeat
while a pass runs or pauses (`generations.leases`). If the worker running the chain dies,
the lease lapses within WORKER_LEASE_SECONDS and the next enqueue (an accept, a submit,
the watchdog in every worker process, or the minutely schedule) starts a new chain.
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

from generations import leases
from generations.models import WorkerLease
from generations.tasks import TASKS

logger = logging.getLogger(__name__)

# A dispatched task should have started by then; past it, the sweep dispatches again.
DISPATCH_GRACE = timedelta(seconds=30)
SWEEP_LEASE = "generations.sweep"
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
    expires = now + leases.lease_length()
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


def _renew_lease(token: str) -> bool:
    """Renew the sweep lease if `token` still holds it (never after it was taken over)."""
    expires = timezone.now() + leases.lease_length()
    return bool(
        WorkerLease.objects.filter(name=SWEEP_LEASE, holder=token).update(expires_at=expires)
    )


def _drop_lease(token: str) -> None:
    WorkerLease.objects.filter(name=SWEEP_LEASE, holder=token).update(holder="")


def run_sweep(token: str | None = None) -> None:
    """One sweep pass, then re-arm while anything is in flight (one chain at a time)."""
    from generations import services

    token = token or uuid.uuid4().hex
    if not _take_lease(token):
        return  # another chain is sweeping
    with leases.heartbeat(lambda: _renew_lease(token), name="lease-sweep"):
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
    with leases.heartbeat(lambda: _renew_lease(token), name="lease-sweep"):
        time.sleep(pause)
    if not _take_lease(token):
        return  # the lease lapsed and another chain took over
    async_task(TASKS["sweep"], token, task_name="sweep-chain", group="sweep")
