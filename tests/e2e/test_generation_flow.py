"""End to end: the API or the services accept, a real qcluster submits to the fake fal
over HTTPS with the real fal_client, completion arrives by polling or by signed webhook,
the video is copied, and exactly the quoted cost is captured."""

from __future__ import annotations

import httpx
import pytest

from accounts import ledger
from accounts.models import CreditAccount, LedgerEntry
from accounts.tokens import create_token
from generations import services
from generations.models import Generation
from tests.e2e.fixtures import wait_for
from tests.factories import REQUEST_BODY

pytestmark = [pytest.mark.e2e, pytest.mark.pg]


def final(generation_id, timeout: float = 40.0) -> Generation:
    return wait_for(
        lambda: Generation.objects.filter(pk=generation_id, status__in=Generation.FINAL).first(),
        timeout=timeout,
    )


def money(generation: Generation) -> list[tuple[str, int, int]]:
    return list(
        LedgerEntry.objects.filter(generation=generation)
        .order_by("id")
        .values_list("kind", "amount", "reserved_change")
    )


def test_api_submit_completes_by_polling_and_captures_the_quote(
    start_worker, fake_fal_factory, live_server, user
):
    fal = fake_fal_factory(queue_seconds=0.3, run_seconds=1.0)
    worker = start_worker(fal=fal)
    _, secret = create_token(user=user, name="e2e")
    api = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"})

    quote = api.post("/api/v1/generations/quote/", json=REQUEST_BODY).json()
    created = api.post(
        "/api/v1/generations/", json=REQUEST_BODY, headers={"Idempotency-Key": "e2e-1"}
    )
    assert created.status_code == 201, created.text
    replay = api.post(
        "/api/v1/generations/", json=REQUEST_BODY, headers={"Idempotency-Key": "e2e-1"}
    )
    assert replay.json()["id"] == created.json()["id"]

    generation = final(created.json()["id"])
    assert generation.status == "succeeded", worker.log()[-3000:]
    body = api.get(f"/api/v1/generations/{generation.pk}/").json()
    video = api.get(body["video_url"])
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"  # an MP4
    assert video.headers["content-type"] == "video/mp4"
    assert money(generation) == [
        ("hold", 0, quote["cost_credits"]),
        ("capture", -quote["cost_credits"], -quote["cost_credits"]),
    ]
    assert CreditAccount.objects.get(user=user).balance == 1000 - quote["cost_credits"]
    submits = [r for r in fal.requests("submit")]
    assert len(submits) == 1
    assert submits[0].body["duration"] == "8s"
    assert ledger.broken_accounts() == []


def test_webhook_completes_and_duplicates_change_nothing(
    start_worker, fake_fal_factory, user, django_capture_on_commit_callbacks
):
    fal = fake_fal_factory(queue_seconds=0.2, run_seconds=0.5)
    worker = start_worker(fal=fal, webhooks=True)
    params = {**REQUEST_BODY, "prompt": REQUEST_BODY["prompt"] + " [fal:webhook_duplicate]"}
    generation = services.accept(user=user, params=params).generation

    generation = final(generation.pk)
    assert generation.status == "succeeded", worker.log()[-3000:]
    wait_for(lambda: len(fal.webhook_log) >= 2, timeout=10)
    # A late poll and a repeated webhook after the end change nothing.
    services.refresh_from_fal(generation=generation)
    assert [kind for kind, *_ in money(generation)] == ["hold", "capture"]
    assert ledger.broken_accounts() == []


def test_failed_job_releases_everything(start_worker, fake_fal_factory, user):
    fal = fake_fal_factory(queue_seconds=0.1, run_seconds=0.3)
    start_worker(fal=fal)
    params = {**REQUEST_BODY, "prompt": "A cat on a windowsill [fal:content_policy]"}
    generation = final(services.accept(user=user, params=params).generation.pk)
    assert (generation.status, generation.error_code) == ("failed", "content_policy")
    assert generation.error_message
    assert CreditAccount.objects.get(user=user).reserved == 0
    assert CreditAccount.objects.get(user=user).balance == 1000
    assert ledger.broken_accounts() == []


def test_cancel_of_a_queued_job_releases_and_cancels_on_fal(start_worker, fake_fal_factory, user):
    fal = fake_fal_factory(queue_seconds=30, run_seconds=30)
    start_worker(fal=fal)
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    queued = wait_for(
        lambda: Generation.objects.filter(pk=generation.pk, status="queued").first(), timeout=20
    )
    services.cancel(generation=queued)
    assert CreditAccount.objects.get(user=user).reserved == 0
    wait_for(lambda: fal.counters.get("cancels", 0) >= 1 or fal.requests("cancel"), timeout=10)
    assert Generation.objects.get(pk=generation.pk).status == "canceled"
    assert ledger.broken_accounts() == []


def test_submit_5xx_is_retried_with_backoff_without_duplicates(
    start_worker, fake_fal_factory, user
):
    fal = fake_fal_factory(queue_seconds=0.1, run_seconds=0.3)
    fal.fail_next("submit", 500, times=2)  # not retried by fal_client: our backoff
    start_worker(fal=fal)
    generation = final(services.accept(user=user, params=REQUEST_BODY).generation.pk, timeout=60)
    assert generation.status == "succeeded"
    assert generation.fal_submit_count == 1
    assert ledger.broken_accounts() == []
