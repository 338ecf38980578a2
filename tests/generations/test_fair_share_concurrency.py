"""Never more than FAL_MAX_CONCURRENCY of ours at fal, with many dispatchers at once: real
threads, each on its own database connection, granting slots while others free them.

Marked `pg`: run on SQLite (writers serialised by BEGIN IMMEDIATE, on the file-based test
database threads share) and on PostgreSQL (`scripts/with-postgres scripts/pytest -m pg`),
where the FalAccount row lock is what holds the limit.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from django.db import close_old_connections, connection, connections

from generations import fair_share, states
from generations.models import Generation
from tests.factories import GenerationFactory, UserFactory
from tests.races import race

pytestmark = [pytest.mark.pg, pytest.mark.django_db(transaction=True)]

S = Generation.Status
LIMIT = 3


@pytest.fixture(autouse=True, params=["fair", "fifo"])
def _shared_database(request, settings):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.fail("These tests need a database that threads share (see settings_test).")
    settings.FAL_MAX_CONCURRENCY = LIMIT
    settings.FAL_QUEUE_POLICY = request.param
    # Granted submits run inline (q2 sync) and so do the sweeps they enqueue: the simulated
    # fal keeps the jobs rendering, so only this test frees slots.
    settings.FAL_SIMULATED_RUN_SECONDS = 3600


def waiting_for(users: int, each: int) -> list[Generation]:
    owners = [UserFactory() for _ in range(users)]
    return [
        GenerationFactory(owner=owner, status=S.WAITING) for _ in range(each) for owner in owners
    ]


def test_sixteen_dispatchers_at_once_grant_exactly_the_free_slots():
    waiting_for(users=4, each=5)

    results = race(16, lambda _: fair_share.fill_slots())

    errors = [value for kind, value in results if kind != "ok"]
    assert not errors, errors[:3]
    granted = [pk for _, ids in results for pk in ids]
    assert len(granted) == len(set(granted)) == LIMIT
    assert fair_share.slots_in_use() == LIMIT
    assert Generation.objects.filter(status=S.WAITING).count() == 20 - LIMIT


def test_granting_and_freeing_at_once_never_exceeds_the_limit():
    waiting_for(users=5, each=8)
    stop = threading.Event()
    seen: list[int] = []

    def watch() -> None:
        close_old_connections()
        try:
            while not stop.is_set():
                seen.append(fair_share.slots_in_use())
                time.sleep(0.002)
        finally:
            connections.close_all()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def dispatcher(index: int) -> int:
        rng = random.Random(index)
        finished = 0
        for _ in range(12):
            fair_share.fill_slots()
            at_fal = list(fair_share.at_fal().values_list("pk", flat=True))
            # fal finished one: it leaves its slot (a final status), as settlement does.
            if at_fal and states.transition(rng.choice(at_fal), to=S.CANCELED):
                finished += 1
            time.sleep(rng.random() / 200)
        return finished

    try:
        results = race(8, dispatcher)
    finally:
        stop.set()
        watcher.join(timeout=10)

    errors = [value for kind, value in results if kind != "ok"]
    assert not errors, errors[:3]
    assert seen and max(seen) <= LIMIT
    fair_share.fill_slots()
    statuses = Counter(Generation.objects.values_list("status", flat=True))
    assert statuses[S.CANCELED] == sum(value for _, value in results)
    assert fair_share.slots_in_use() == min(LIMIT, 40 - statuses[S.CANCELED])
