"""Fair share of fal's slots end to end: two worker clusters on the Redis broker, the real
gateway against the fake fal, FAL_MAX_CONCURRENCY=2 while the fake would run 8 at once.
The fake's own count proves we never held more than 2 jobs there, and each freed slot was
refilled within a second of the capture that freed it (not at a sweep tick)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from accounts import ledger
from accounts.tokens import create_token
from generations.models import Generation
from tests.e2e.fixtures import wait_for
from tests.e2e.redis import redis_broker, redis_server  # noqa: F401
from tests.factories import REQUEST_BODY, UserFactory

LIMIT = 2
SHORT = {**REQUEST_BODY, "duration": "4s", "resolution": "720p", "generate_audio": False}


@pytest.mark.e2e
@pytest.mark.pg
def test_two_workers_on_redis_keep_fal_at_the_limit_and_refill_at_once(
    redis_broker,  # noqa: F811
    start_worker,
    fake_fal_factory,
    live_server,
    settings,
):
    settings.MAX_IN_FLIGHT_PER_USER = 0
    settings.FAL_MAX_CONCURRENCY = LIMIT  # the web tier (this process) queues at accept
    fal = fake_fal_factory(queue_seconds=0, run_seconds=1.5, max_concurrent=8)
    workers = [
        start_worker(fal=fal, REDIS_URL=redis_broker.url, FAL_MAX_CONCURRENCY=str(LIMIT))
        for _ in range(2)
    ]
    heavy, light = UserFactory(credits=10_000), UserFactory(credits=10_000)
    clients = {}
    for user in (heavy, light):
        _, secret = create_token(user=user, name="e2e-fair-share")
        clients[user.pk] = httpx.Client(
            base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}
        )

    ids = []
    for i in range(6):
        created = clients[heavy.pk].post(
            "/api/v1/generations/", json={**SHORT, "prompt": f"heavy #{i}"}
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    light_created = clients[light.pk].post(
        "/api/v1/generations/", json={**SHORT, "prompt": "light"}
    )
    assert light_created.status_code == 201
    light_id = light_created.json()["id"]
    ids.append(light_id)
    shown = clients[light.pk].get(f"/api/v1/generations/{light_id}/").json()
    assert shown["status"] in ("queued", "pending", "running")

    done = Generation.objects.filter(pk__in=ids, status__in=Generation.FINAL)
    wait_for(lambda: done.count() == len(ids), timeout=90)
    logs = "\n".join(w.log()[-3000:] for w in workers)
    assert set(done.values_list("status", flat=True)) == {"succeeded"}, logs

    jobs = fal.stats()["jobs"]
    assert jobs["total"] == len(ids)
    assert jobs["max_running"] == LIMIT, jobs  # never more, and the slots were used

    rows = list(Generation.objects.filter(pk__in=ids).values("pk", "submitted_at", "completed_at"))
    submitted = sorted(row["submitted_at"] for row in rows)
    captured = sorted(row["completed_at"] for row in rows)
    # The k-th submit beyond the first LIMIT waited for the (k - LIMIT)-th slot to be freed:
    # it follows that capture (or the news from fal just before it) within a second.
    gaps = [submitted[k] - captured[k - LIMIT] for k in range(LIMIT, len(ids))]
    assert max(gaps) <= timedelta(seconds=1), [g.total_seconds() for g in gaps]
    # The light user's one generation went before the heavy user's backlog.
    order = [row["pk"] for row in sorted(rows, key=lambda row: row["submitted_at"])]
    assert order.index(Generation.objects.get(pk=light_id).pk) <= LIMIT
    assert ledger.broken_accounts() == []
