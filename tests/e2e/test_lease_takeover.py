"""Leases with real qclusters: a SIGKILLed worker's video copy is taken over by another
cluster within the lease (plus one sweep interval), and a slow but living worker whose copy
outlasts the lease keeps it (one copy, one capture)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from accounts import ledger
from accounts.models import LedgerEntry
from generations import services
from generations.dispatch import SWEEP_LEASE, SWEEP_MAX_PAUSE_SECONDS
from generations.models import Generation, WorkerLease
from tests.e2e.fixtures import wait_for
from tests.factories import REQUEST_BODY

pytestmark = [pytest.mark.e2e, pytest.mark.pg]

# Correctness bound, not a performance figure: the dead worker's lease (and the sweep
# chain's, if it died with it) lapses within WORKER_LEASE_SECONDS (<= 30 s) of its last
# renewal, then the next sweep pass, one sweep interval later at most, takes it over.
TAKEOVER_BOUND = 30 + SWEEP_MAX_PAUSE_SECONDS


def running(worker) -> None:
    wait_for(lambda: worker.log().count("ready for work") >= 2, timeout=30)  # both workers


def copying(fal) -> None:
    """The first worker has claimed the finish lease and asked fal for the video."""
    wait_for(lambda: fal.requests("files"), timeout=30)


def final(generation_id, timeout: float) -> Generation:
    return wait_for(
        lambda: Generation.objects.filter(pk=generation_id, status__in=Generation.FINAL).first(),
        timeout=timeout,
        interval=0.1,
    )


def money(generation: Generation) -> list[str]:
    return list(
        LedgerEntry.objects.filter(generation=generation)
        .order_by("id")
        .values_list("kind", flat=True)
    )


def test_a_sigkilled_workers_copy_is_taken_over_within_30_s(start_worker, fake_fal_factory, user):
    assert settings.WORKER_LEASE_SECONDS <= 30
    fal = fake_fal_factory(queue_seconds=0.2, run_seconds=0.5)
    fal.fail_next("files", "slow", seconds=55)  # the victim's copy hangs until it dies
    victim = start_worker(fal=fal, LOG_LEVEL_TASKS="INFO")
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    copying(fal)
    rescuer = start_worker(fal=fal, LOG_LEVEL_TASKS="INFO")
    running(rescuer)

    victim.kill()  # SIGKILL the whole cluster, its sweep chain too if it held it
    killed = time.monotonic()
    generation = final(generation.pk, timeout=TAKEOVER_BOUND + 30)
    taken_over_in = time.monotonic() - killed

    assert generation.status == "succeeded", rescuer.log()[-3000:]
    assert taken_over_in <= TAKEOVER_BOUND, (taken_over_in, rescuer.log()[-3000:])
    assert len(fal.requests("files")) == 2  # the dead copy and the rescuer's
    assert len(fal.requests("submit")) == 1
    assert money(generation) == ["hold", "capture"]
    assert ledger.broken_accounts() == []
    print(f"taken over {taken_over_in:.1f} s after the SIGKILL (bound {TAKEOVER_BOUND:.0f} s)")


def test_a_slow_copy_outlasting_its_lease_is_not_taken_over(start_worker, fake_fal_factory, user):
    # Well past the lease: without renewals another worker (two clusters, four workers)
    # would take it over and copy it a second time.
    slow = settings.WORKER_LEASE_SECONDS + 3 * SWEEP_MAX_PAUSE_SECONDS
    fal = fake_fal_factory(queue_seconds=0.2, run_seconds=0.5)
    fal.fail_next("files", "slow", seconds=slow)
    first = start_worker(fal=fal, LOG_LEVEL_TASKS="INFO")
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    copying(fal)
    copy_started = time.monotonic()
    second = start_worker(fal=fal, LOG_LEVEL_TASKS="INFO")
    running(second)

    generation = final(generation.pk, timeout=slow + 30)

    assert generation.status == "succeeded", first.log()[-3000:]
    assert len(fal.requests("files")) == 1  # never copied beside the living worker
    assert time.monotonic() - copy_started >= slow - 1  # the copy did outlast the lease
    assert money(generation) == ["hold", "capture"]
    assert ledger.broken_accounts() == []


def test_a_sweep_chain_that_died_with_its_worker_is_restarted_within_30_s(
    start_worker, fake_fal_factory, user
):
    """Nothing else wakes a sweep here (no accepts, no schedule): the watchdog in the
    surviving workers restarts the chain once its lease lapsed."""
    from django_q.models import Schedule

    Schedule.objects.all().delete()  # the minutely one restarts a chain too, but in up to 90 s
    fal = fake_fal_factory(queue_seconds=0.2, run_seconds=0.5)
    victim = start_worker(fal=fal, LOG_LEVEL_TASKS="INFO")
    params = {**REQUEST_BODY, "prompt": REQUEST_BODY["prompt"] + " [fal:slow=10]"}
    generation = services.accept(user=user, params=params).generation
    wait_for(lambda: fal.requests("status"), timeout=30)  # the victim's chain is polling
    dead_chain = WorkerLease.objects.get(name=SWEEP_LEASE).holder

    victim.kill()  # the only cluster: its sweep chain dies with it
    killed = time.monotonic()
    rescuer = start_worker(fal=fal, LOG_LEVEL_TASKS="INFO")
    wait_for(
        lambda: WorkerLease.objects.exclude(holder__in=["", dead_chain]).exists(),
        timeout=TAKEOVER_BOUND + 30,
        interval=0.1,
    )
    restarted_in = time.monotonic() - killed
    generation = final(generation.pk, timeout=30)

    assert restarted_in <= TAKEOVER_BOUND, (restarted_in, rescuer.log()[-3000:])
    assert "event=sweep_chain_restarted" in rescuer.log()
    assert generation.status == "succeeded", rescuer.log()[-3000:]
    assert len(fal.requests("submit")) == 1
    assert money(generation) == ["hold", "capture"]
    print(f"sweep chain restarted {restarted_in:.1f} s after the SIGKILL")
