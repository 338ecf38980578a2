"""Short leases renewed by a heartbeat: renewed while held, never after they were lost,
taken over once they lapse; the sweep chain's lease and its watchdog."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from generations import dispatch, leases
from generations.models import Generation, WorkerLease
from generations.services import sweep
from tests.factories import GenerationFactory

Status = Generation.Status

pytestmark = pytest.mark.django_db


def held_generation(**fields) -> tuple[Generation, timezone.datetime]:
    held_until = leases.generation_lease_expiry()
    generation = GenerationFactory(lease_until=held_until, **fields)
    return generation, held_until


# --- A generation's lease ------------------------------------------------------------------


def test_the_holder_renews_its_lease_one_lease_length_ahead(settings):
    settings.WORKER_LEASE_SECONDS = 20
    generation, held_until = held_generation(status=Status.SUBMITTING)

    renewed = leases.renew_generation_lease(generation.pk, held_until)

    assert renewed is not None and renewed > held_until
    assert renewed - timezone.now() > timedelta(seconds=19)
    generation.refresh_from_db()
    assert generation.lease_until == renewed
    # The next renewal goes from the new expiry; the old one no longer names the lease.
    assert leases.renew_generation_lease(generation.pk, held_until) is None
    assert leases.renew_generation_lease(generation.pk, renewed) is not None


def test_a_lease_taken_over_is_never_renewed_by_its_former_holder():
    generation, held_until = held_generation(status=Status.SUBMITTING)
    taken = timezone.now() + timedelta(seconds=25)
    Generation.objects.filter(pk=generation.pk).update(lease_until=taken)  # the taker's

    assert leases.renew_generation_lease(generation.pk, held_until) is None
    generation.refresh_from_db()
    assert generation.lease_until == taken


def test_a_lease_the_work_ended_is_not_revived():
    generation, held_until = held_generation(status=Status.QUEUED)
    Generation.objects.filter(pk=generation.pk).update(lease_until=None)  # recorded on fal

    assert leases.renew_generation_lease(generation.pk, held_until) is None
    generation.refresh_from_db()
    assert generation.lease_until is None


def test_a_lapsed_submit_lease_is_taken_over_by_the_next_sweep():
    """A worker died mid-submit: once its lease lapsed the sweep submits again."""
    generation = GenerationFactory(
        status=Status.SUBMITTING, attempts=1, lease_until=timezone.now() + timedelta(seconds=20)
    )
    assert sweep().dispatched == 0  # alive (or not yet lapsed): left alone

    Generation.objects.filter(pk=generation.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert sweep().dispatched == 1
    generation.refresh_from_db()
    assert generation.status == Status.QUEUED  # submitted by the sweep's worker (inline here)
    assert generation.attempts == 2


# --- The heartbeat ---------------------------------------------------------------------------


def test_the_heartbeat_renews_until_the_work_ends():
    calls = []
    beat = leases.Heartbeat(lambda: calls.append(1) or True, interval=0.05, name="t")
    beat.start()
    time.sleep(0.4)
    beat.stop()
    count = len(calls)
    time.sleep(0.2)

    assert count >= 3 and beat.renewals == count
    assert len(calls) == count  # no renewal after the work ended
    assert not beat.lost.is_set()


def test_the_heartbeat_stops_once_the_lease_is_lost():
    answers = iter([True, False])
    calls = []

    def renew() -> bool:
        calls.append(1)
        return next(answers)

    beat = leases.Heartbeat(renew, interval=0.05, name="t")
    beat.start()
    assert beat.lost.wait(2)
    time.sleep(0.2)
    beat.stop()
    assert len(calls) == 2  # never tried again after losing it


def test_the_heartbeat_thread_ends_when_the_work_raises(settings):
    settings.WORKER_LEASE_SECONDS = 4
    with pytest.raises(RuntimeError), leases.heartbeat(lambda: True, name="lease-raises"):
        raise RuntimeError("the copy failed")
    assert not [t for t in threading.enumerate() if t.name == "lease-raises"]


@pytest.mark.django_db(transaction=True)
def test_a_slow_but_living_holder_keeps_its_lease_past_the_lease_length(settings):
    """The work outlasts the lease; the heartbeat keeps it, so nobody may claim it."""
    settings.WORKER_LEASE_SECONDS = 4  # renewed every second
    generation, held_until = held_generation(
        status=Status.RUNNING, fal_video_url="https://fal.media/v.mp4"
    )

    with leases.generation_heartbeat(generation.pk, held_until, work="finish") as beat:
        time.sleep(5)  # longer than the lease
        now = timezone.now()
        claimable = Generation.objects.filter(pk=generation.pk, lease_until__lt=now).exists()

    assert not claimable
    assert beat.renewals >= 3 and not beat.lost.is_set()
    generation.refresh_from_db()
    assert generation.lease_until > timezone.now()


# --- The sweep chain's lease and watchdog ----------------------------------------------------


def lease_row() -> WorkerLease:
    return WorkerLease.objects.get(name=dispatch.SWEEP_LEASE)


def test_the_sweep_lease_is_renewed_only_by_its_holder_and_taken_once_lapsed(settings):
    settings.WORKER_LEASE_SECONDS = 20
    assert dispatch._take_lease("chain-a")
    assert not dispatch._take_lease("chain-b")  # held
    assert dispatch._renew_lease("chain-a")
    assert not dispatch._renew_lease("chain-b")

    WorkerLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))  # a dies
    assert dispatch._take_lease("chain-b")
    assert not dispatch._renew_lease("chain-a")  # never renewed after it was taken over
    assert lease_row().holder == "chain-b"


def test_the_watchdog_restarts_a_dead_chain_while_work_is_in_flight():
    GenerationFactory(status=Status.QUEUED, fal_request_id="req-1")
    WorkerLease.objects.create(
        name=dispatch.SWEEP_LEASE,
        holder="dead-chain",
        expires_at=timezone.now() - timedelta(seconds=1),
    )

    assert leases.watch_sweep()  # a sweep ran (inline here) and took the lease over
    assert lease_row().holder != "dead-chain"
    assert lease_row().expires_at > timezone.now()
    assert not leases.watch_sweep()  # fresh: nothing to restart


def test_the_watchdog_leaves_a_living_chain_and_an_idle_system_alone():
    WorkerLease.objects.create(
        name=dispatch.SWEEP_LEASE,
        holder="idle",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert not leases.watch_sweep()  # nothing in flight: no chain needed

    GenerationFactory(status=Status.QUEUED, fal_request_id="req-1")
    WorkerLease.objects.update(holder="alive", expires_at=timezone.now() + timedelta(seconds=10))
    assert not leases.watch_sweep()
    assert lease_row().holder == "alive"
