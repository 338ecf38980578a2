"""Short leases kept alive by a heartbeat, so that a dead worker's work is taken over soon.

A worker that submits a generation, copies its video or runs the sweep chain holds a
lease of `WORKER_LEASE_SECONDS` (20 s by default) and renews it every quarter of that
from a small thread (`heartbeat`) for as long as the work lasts. A SIGKILLed worker
stops renewing, its lease lapses within the lease length, and the next sweep pass takes
the work over; a slow but living worker keeps its lease, however long its fal call or
video copy takes, so nobody submits or copies a second time beside it.

Every renewal is conditional on still holding the lease:

* a generation's lease is named by its expiry: whoever wrote `lease_until = T` holds it
  while the row still says T (a taker writes its own, later, expiry; the end of the work
  clears it), so a renewal after the lease was lost or ended changes nothing and stops
  the heartbeat;
* the sweep's `WorkerLease` row names its holder (the chain's token).

`watch_sweep`, run by a thread in every worker process, restarts the sweep chain when
its lease has lapsed (the worker running it died) while work is in flight: django-q2's
scheduler only ticks every 30 s and the minutely schedule is too slow for that.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from django_q.conf import Conf

from generations.models import Generation

logger = logging.getLogger(__name__)


def lease_length() -> timedelta:
    return timedelta(seconds=settings.WORKER_LEASE_SECONDS)


def heartbeat_interval() -> float:
    """Seconds between renewals: three renewals may fail before the lease lapses."""
    return settings.WORKER_LEASE_SECONDS / 4


class Heartbeat:
    """Calls `renew` every `interval` seconds from a thread until stopped; stops by itself
    when `renew` answers False (the lease was lost or ended), and says so in `lost`."""

    def __init__(self, renew: Callable[[], bool], *, interval: float, name: str) -> None:
        self._renew = renew
        self._interval = interval
        self._stop = threading.Event()
        self.lost = threading.Event()
        self.renewals = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 10)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                try:
                    renewed = self._renew()
                except Exception:  # the database hiccuped: try again at the next beat
                    logger.exception("event=lease_renewal_crashed thread=%s", self._thread.name)
                    continue
                if not renewed:
                    self.lost.set()
                    logger.warning("event=lease_lost thread=%s", self._thread.name)
                    return
                self.renewals += 1
        finally:
            connection.close()  # this thread's own connection


@contextmanager
def heartbeat(renew: Callable[[], bool], *, name: str) -> Iterator[Heartbeat]:
    """Keep a lease alive with `renew` while the block runs (also when it raises, or is
    cut short by django-q2's timeout: the thread stops on the way out)."""
    beat = Heartbeat(renew, interval=heartbeat_interval(), name=name)
    beat.start()
    try:
        yield beat
    finally:
        beat.stop()


# --- A generation's lease (submit, finish) -----------------------------------------------


def generation_lease_expiry() -> datetime:
    """The expiry a worker writes when it takes a generation's lease."""
    return timezone.now() + lease_length()


def renew_generation_lease(generation_id: UUID, held_until: datetime) -> datetime | None:
    """Push the lease the caller took (`lease_until == held_until`) one lease length
    further. Returns the new expiry, or None if the lease is no longer the caller's
    (taken over after it lapsed, or cleared because the work ended)."""
    expires = max(generation_lease_expiry(), held_until + timedelta(microseconds=1))
    renewed = Generation.objects.filter(pk=generation_id, lease_until=held_until).update(
        lease_until=expires
    )
    return expires if renewed else None


@contextmanager
def generation_heartbeat(generation_id: UUID, held_until: datetime, *, work: str):
    """Renew the generation's lease taken with expiry `held_until` while the block runs."""
    held = [held_until]

    def renew() -> bool:
        expires = renew_generation_lease(generation_id, held[0])
        if expires is None:
            return False
        held[0] = expires
        return True

    with heartbeat(renew, name=f"lease-{work}-{generation_id}") as beat:
        yield beat


# --- The sweep chain's watchdog ----------------------------------------------------------

WATCH_THREAD_NAME = "sweep-watchdog"


def watch_sweep() -> bool:
    """Start a sweep chain if the last one died: its lease lapsed while generations are in
    flight. One watcher wins the restart (a conditional update of the lapsed row), the
    others see a fresh expiry. Returns whether this call enqueued a sweep."""
    from generations import dispatch
    from generations.models import WorkerLease

    now = timezone.now()
    lease = WorkerLease.objects.filter(name=dispatch.SWEEP_LEASE).first()
    if lease is not None and lease.expires_at >= now:
        return False  # a chain holds it (or a restart is on its way)
    if not Generation.objects.in_flight().exists():
        return False
    if lease is not None:
        # Free for the next chain to take at once, and fresh, so no other watcher enqueues
        # a second sweep; if this one is lost with its worker, it lapses again.
        restarting = WorkerLease.objects.filter(
            name=dispatch.SWEEP_LEASE, expires_at=lease.expires_at
        ).update(holder="", expires_at=now + lease_length())
        if not restarting:
            return False
    logger.warning(
        "event=sweep_chain_restarted lapsed_at=%s",
        lease.expires_at.isoformat() if lease is not None else "",
    )
    dispatch.enqueue("sweep")
    return True


def _watch_forever(stop: threading.Event) -> None:
    while not stop.wait(heartbeat_interval()):
        try:
            close_old_connections()
            watch_sweep()
        except Exception:
            logger.exception("event=sweep_watchdog_crashed")
        finally:
            connection.close()


def start_sweep_watchdog(sender=None, **kwargs) -> None:
    """django-q2's `post_spawn`: every worker process watches the sweep chain. Not in
    sync mode, where django-q2 runs its worker function inline in the caller's process."""
    if Conf.SYNC or multiprocessing.parent_process() is None:
        return
    if any(thread.name == WATCH_THREAD_NAME for thread in threading.enumerate()):
        return
    threading.Thread(
        target=_watch_forever, args=(threading.Event(),), name=WATCH_THREAD_NAME, daemon=True
    ).start()


def connect_sweep_watchdog() -> None:
    from django_q.signals import post_spawn

    post_spawn.connect(start_sweep_watchdog, dispatch_uid="generations.sweep_watchdog")
