"""Callbacks starving the workers: an integrator's endpoint that answers one byte every
few seconds held a worker for the task's whole life, and enough of them (or one user with
hundreds of finished generations) took every worker, so submits, sweeps and finishes
waited. Each attempt now has one total deadline, and callback deliveries hold database
slots (a few for the cluster, fewer per user): one that finds no free slot schedules
itself a little later and frees its worker at once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from django_q.models import Schedule

from generations import callbacks
from generations.models import CallbackAttempt, Generation, WorkerLease
from tests.factories import GenerationFactory
from tests.security.internet import answer, servers, trickle  # noqa: F401

STATUS_LINE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@pytest.fixture(autouse=True)
def _short_deadline(settings):
    settings.CALLBACK_TIMEOUT_SECONDS = 1.5
    settings.CALLBACK_CONCURRENCY = 1
    settings.CALLBACKS_PER_USER = 1


def finished(user, url: str) -> Generation:
    return GenerationFactory(
        owner=user, status="failed", error_code="content_policy", callback_url=url
    )


def url_of(server) -> str:
    return f"http://127.0.0.1:{server.port}/hook"


def later_schedules(generation: Generation) -> list[Schedule]:
    return list(Schedule.objects.filter(name__startswith=f"callback:{generation.pk}:1:later:"))


def in_thread(action) -> threading.Thread:
    def run() -> None:
        try:
            action()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.02)


@pytest.mark.django_db
def test_a_receiver_trickling_one_byte_at_a_time_is_cut_off_at_the_deadline(
    user,
    servers,  # noqa: F811
):
    """One byte every 0.3 s never trips a per-read timeout (the old one was 10 s); the
    attempt's total deadline ends it, and the retry is scheduled as for any failure."""
    slow = servers(lambda request: trickle(STATUS_LINE, 0.3))
    generation = finished(user, url_of(slow))
    started = time.monotonic()
    assert callbacks.deliver_callback(str(generation.pk), 1) == "retry_scheduled"
    assert time.monotonic() - started < 3.0
    attempt = CallbackAttempt.objects.get(generation=generation)
    assert attempt.status_code is None and "Timeout" in attempt.error
    assert not WorkerLease.objects.filter(name__startswith="callbacks.").exists()  # released


@pytest.mark.django_db(transaction=True)  # a second thread delivers meanwhile
def test_with_every_callback_slot_taken_a_delivery_is_deferred_not_blocking(
    user,
    other_user,
    servers,  # noqa: F811
):
    slow = servers(lambda request: trickle(STATUS_LINE, 0.3))
    fast = servers(lambda request: [answer(200, b"ok")])
    stuck = finished(user, url_of(slow))
    waiting = finished(other_user, url_of(fast))

    busy = in_thread(lambda: callbacks.deliver_callback(str(stuck.pk), 1))
    wait_until(lambda: slow.requests)  # the only slot is held by a slow POST

    started = time.monotonic()
    assert callbacks.deliver_callback(str(waiting.pk), 1) == "deferred"
    assert time.monotonic() - started < 0.5  # the worker is free again at once
    assert fast.requests == []
    assert not CallbackAttempt.objects.filter(generation=waiting).exists()  # nothing spent
    (later,) = later_schedules(waiting)
    assert timezone.now() < later.next_run < timezone.now() + timedelta(seconds=30)
    busy.join(timeout=10)

    # Once the slot is free, the deferred delivery goes out when its schedule fires.
    from django_q.brokers import get_broker
    from django_q.scheduler import scheduler

    Schedule.objects.filter(pk=later.pk).update(next_run=timezone.now() - timedelta(seconds=1))
    scheduler(broker=get_broker())
    assert len(fast.requests) == 1
    waiting.refresh_from_db()
    assert waiting.callback_delivered_at is not None


@pytest.mark.django_db(transaction=True)
def test_one_users_backlog_does_not_take_the_slots_of_others(
    user,
    other_user,
    settings,
    servers,  # noqa: F811
):
    settings.CALLBACK_CONCURRENCY = 2
    slow = servers(lambda request: trickle(STATUS_LINE, 0.3))
    fast = servers(lambda request: [answer(200, b"ok")])
    first = finished(user, url_of(slow))
    backlog = [finished(user, url_of(fast)) for _ in range(3)]
    someone_else = finished(other_user, url_of(fast))

    busy = in_thread(lambda: callbacks.deliver_callback(str(first.pk), 1))
    wait_until(lambda: slow.requests)

    assert [callbacks.deliver_callback(str(g.pk), 1) for g in backlog] == ["deferred"] * 3
    assert callbacks.deliver_callback(str(someone_else.pk), 1) == "delivered"
    assert len(fast.requests) == 1
    busy.join(timeout=10)


@pytest.mark.django_db
def test_the_slot_of_a_worker_that_died_frees_itself(user, servers):  # noqa: F811
    fast = servers(lambda request: [answer(200, b"ok")])
    WorkerLease.objects.create(
        name="callbacks.slot.0",
        holder="a-worker-that-was-killed",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    generation = finished(user, url_of(fast))
    assert callbacks.deliver_callback(str(generation.pk), 1) == "delivered"


@pytest.mark.django_db
def test_the_sweep_leaves_a_deferred_delivery_to_its_schedule(user, servers):  # noqa: F811
    fast = servers(lambda request: [answer(200, b"ok")])
    WorkerLease.objects.create(
        name="callbacks.slot.0",
        holder="another-delivery",
        expires_at=timezone.now() + timedelta(minutes=1),
    )
    generation = finished(user, url_of(fast))
    assert callbacks.deliver_callback(str(generation.pk), 1) == "deferred"
    past = timezone.now() - timedelta(minutes=10)
    Generation.objects.filter(pk=generation.pk).update(created_at=past, completed_at=past)
    assert callbacks.sweep_callbacks() == 0  # its ":later:" schedule is pending
    Schedule.objects.filter(name__startswith=f"callback:{generation.pk}:").delete()
    WorkerLease.objects.all().delete()
    assert callbacks.sweep_callbacks() == 1  # lost: the sweep sends it
    assert len(fast.requests) == 1
