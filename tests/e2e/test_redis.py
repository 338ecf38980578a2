"""Scale-out: django-q2's Redis broker (REDIS_URL) with two worker clusters sharing it, and
the /healthz probe that load balancers use (database, and the broker when it is Redis).

The test process plays the web tier started with REDIS_URL: `redis_broker` (see
tests/e2e/redis.py) points its cache and django-q2's broker at the throwaway Redis; the
workers get REDIS_URL in their environment and build the same configuration from it.
"""

from __future__ import annotations

import httpx
import pytest
from django_q.models import OrmQ, Success

from accounts import ledger
from accounts.models import CreditAccount, LedgerEntry
from accounts.tokens import create_token
from generations.models import Generation
from tests.e2e.fixtures import wait_for
from tests.e2e.redis import redis_broker, redis_server  # noqa: F401
from tests.factories import REQUEST_BODY


@pytest.mark.e2e
@pytest.mark.pg
def test_two_workers_share_the_redis_broker_end_to_end(
    redis_broker,  # noqa: F811
    start_worker,
    fake_fal_factory,
    live_server,
    settings,
    user,
):
    settings.MAX_IN_FLIGHT_PER_USER = 0
    fal = fake_fal_factory(queue_seconds=0.2, run_seconds=0.5, max_concurrent=8)
    workers = [
        start_worker(fal=fal, REDIS_URL=redis_broker.url),
        start_worker(fal=fal, REDIS_URL=redis_broker.url),
    ]
    _, secret = create_token(user=user, name="e2e-redis")
    api = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"})

    quote = api.post("/api/v1/generations/quote/", json=REQUEST_BODY).json()["cost_credits"]
    ids = []
    for i in range(3):
        body = {**REQUEST_BODY, "prompt": f"{REQUEST_BODY['prompt']} #{i}"}
        created = api.post("/api/v1/generations/", json=body, headers={"Idempotency-Key": f"r{i}"})
        assert created.status_code == 201, created.text
        replay = api.post("/api/v1/generations/", json=body, headers={"Idempotency-Key": f"r{i}"})
        assert replay.json()["id"] == created.json()["id"]
        ids.append(created.json()["id"])

    done = Generation.objects.filter(pk__in=ids, status__in=Generation.FINAL)
    wait_for(lambda: done.count() == len(ids), timeout=60)
    logs = "\n".join(w.log()[-2000:] for w in workers)
    assert set(done.values_list("status", flat=True)) == {"succeeded"}, logs
    for pk in ids:
        video = api.get(api.get(f"/api/v1/generations/{pk}/").json()["video_url"])
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
        kinds = LedgerEntry.objects.filter(generation_id=pk).values_list("kind", "amount")
        assert list(kinds.order_by("id")) == [("hold", 0), ("capture", -quote)]
    assert CreditAccount.objects.get(user=user).balance == 1000 - 3 * quote
    assert ledger.broken_accounts() == []
    # The tasks went through Redis, not the ORM queue, and the workers ran them (their
    # monitors save results in the database).
    assert OrmQ.objects.count() == 0
    assert Success.objects.filter(group="submit").count() == len(ids)
    assert len(fal.requests("submit")) == len(ids)


@pytest.mark.e2e
@pytest.mark.django_db
def test_healthz_reports_database_and_redis_broker(redis_broker, client):  # noqa: F811
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.e2e
@pytest.mark.django_db
def test_healthz_fails_when_redis_is_down(redis_broker, client):  # noqa: F811
    redis_broker.stop()
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["database"] == "ok"
    assert body["broker"].startswith("error: ")


@pytest.mark.django_db
def test_healthz_with_the_orm_broker_checks_the_database(client, settings):
    settings.REDIS_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
