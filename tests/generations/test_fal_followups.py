"""Loose ends of issue 11, against the fake fal with the real fal-client:

* users read plain words for every failure fal reports, a webhook's included; fal's own
  words are logged and kept for staff;
* an outage of fal's storage neither burns submit attempts nor fails the video;
* a job adopted from a webhook records what fal bills for it, as a submit's answer does;
* the webhook of our own surplus job is acknowledged and changes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from accounts.models import CreditAccount
from generations import fal as fal_module
from generations import services
from generations.models import FalAccount, Generation
from generations.services import account
from tests.credits import kinds
from tests.factories import REQUEST_BODY, image_upload
from tests.fakefal import FakeFal

pytestmark = pytest.mark.django_db

PUBLIC = "https://veo.example.com"
COST_8S_1080P_AUDIO = Decimal("3.20")  # fal's seeded price x 8 s (test_costs)


@pytest.fixture
def fal(fake_fal_factory, settings) -> FakeFal:
    """The real gateway against the fake; its jobs stay queued (no webhook leaves it), and
    our webhooks are verified with its keys."""
    settings.FAL_KEY = "test-key-id:test-key-secret"
    settings.FAL_SIMULATED = False
    settings.FAL_HTTP_TIMEOUT = 5.0
    settings.PUBLIC_BASE_URL = PUBLIC
    fake = fake_fal_factory(queue_seconds=60)
    settings.FAL_WEBHOOK_JWKS_URL = fake.jwks_url
    return fake


def webhook_path(generation: Generation) -> str:
    """The path and query of the URL fal was given at submit (token included)."""
    url = urlsplit(services.fal_webhook_url(generation))
    return f"{url.path}?{url.query}"


def post_webhook(client, fal: FakeFal, generation: Generation, body: dict[str, Any]):
    """Deliver a webhook as fal would: sorted keys, signed for our fal user."""
    raw = json.dumps(body, sort_keys=True).encode()
    return client.post(
        webhook_path(generation),
        data=raw,
        content_type="application/json",
        headers=fal.sign(raw, body["request_id"]),
    )


def error_webhook(request_id: str, status_code: int, detail: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "ERROR",
        "error": f"Invalid status code: {status_code}",
        "payload": {"detail": detail} if isinstance(detail, list) else detail,
    }


def queued(user) -> Generation:
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.status == "queued", generation.error_message
    return generation


# --- 1. Users never read fal's raw words ------------------------------------------------------

LOCKED = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
)


@pytest.mark.parametrize(
    ("status_code", "body", "raw"),
    [
        (403, {"detail": LOCKED}, "User is locked"),
        (401, {"detail": "Invalid API key"}, "Invalid API key"),
        (503, {"detail": "Runner disconnected", "error_type": "runner_disconnected"}, "Runner"),
    ],
    ids=["account_locked", "bad_key", "runner_disconnected"],
)
def test_error_webhook_with_an_operational_message_shows_users_a_plain_reason(
    client, fal, user, caplog, status_code, body, raw
):
    generation = queued(user)

    with caplog.at_level(logging.WARNING, logger="generations"):
        response = post_webhook(
            client, fal, generation, error_webhook(generation.fal_request_id, status_code, body)
        )

    assert response.status_code == 200
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "upstream_error")
    assert generation.error_message == fal_module.PLAIN_MESSAGES["upstream_error"]
    assert raw not in generation.error_message
    # fal's own words are for staff: in the log and in the generation's fal log.
    assert raw in generation.fal_logs[-1]
    assert f"event=fal_job_failed generation={generation.pk}" in caplog.text
    assert raw in caplog.text
    assert kinds(generation) == ["hold", "release"]


def test_content_policy_webhook_keeps_fals_words_about_the_input(client, fal, user):
    generation = queued(user)
    detail = [
        {
            "loc": ["body", "prompt"],
            "msg": "The content was flagged by a content checker.",
            "type": "content_policy_violation",
        }
    ]

    response = post_webhook(
        client, fal, generation, error_webhook(generation.fal_request_id, 422, detail)
    )

    assert response.status_code == 200
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "content_policy")
    assert generation.error_message == "The content was flagged by a content checker."


# --- 2. fal's storage down: the video waits, nothing burns ------------------------------------


def accept_upload(user) -> Generation:
    return services.accept(
        user=user, params={**REQUEST_BODY, "image_url": ""}, image_file=image_upload(fmt="PNG")
    ).generation


def test_storage_outage_neither_burns_submit_attempts_nor_fails_the_video(user, fal, settings):
    settings.PUBLIC_BASE_URL = ""  # no signed URL to fall back on
    fal.configure(faults={"upload": {"500": 1.0}})
    generation = accept_upload(user)

    for _ in range(services.MAX_SUBMIT_ATTEMPTS + 2):
        services.submit(generation_id=generation.pk)
        generation.refresh_from_db()
        assert generation.status == "pending"
        assert generation.next_poll_at > timezone.now()  # it backs off

    assert (generation.attempts, generation.error_code, generation.fal_submit_count) == (0, "", 0)
    assert fal.requests("submit") == []
    assert kinds(generation) == ["hold"]  # nothing charged, nothing released
    assert CreditAccount.objects.get(user=user).reserved == generation.cost_credits

    fal.configure(faults={})  # storage is back
    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "queued"
    assert (generation.attempts, generation.fal_submit_count) == (1, 1)
    [upload] = fal.uploads()
    assert [r.body["image_url"] for r in fal.requests("submit")] == [upload.url]


def test_storage_outage_backs_off_longer_the_longer_it_lasts(user, fal, settings):
    settings.PUBLIC_BASE_URL = ""
    fal.configure(faults={"upload": {"500": 1.0}})
    generation = accept_upload(user)

    def delay_after_a_failed_upload() -> timedelta:
        services.submit(generation_id=generation.pk)
        generation.refresh_from_db()
        return generation.next_poll_at - timezone.now()

    first = delay_after_a_failed_upload()
    Generation.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    later = delay_after_a_failed_upload()
    Generation.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - timedelta(hours=3)
    )
    capped = delay_after_a_failed_upload()

    assert timedelta(0) < first < later <= capped <= timedelta(minutes=2)


def test_a_video_never_sent_to_fal_ends_at_its_deadline_saying_nothing_was_charged(
    user, fal, settings
):
    settings.PUBLIC_BASE_URL = ""
    fal.configure(faults={"upload": {"500": 1.0}})
    generation = accept_upload(user)
    services.submit(generation_id=generation.pk)
    Generation.objects.filter(pk=generation.pk).update(
        deadline_at=timezone.now() - timedelta(seconds=1), next_poll_at=None
    )

    services.sweep()

    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "timeout")
    assert "nothing was charged" in generation.error_message.lower()
    assert kinds(generation) == ["hold", "release"]
    assert CreditAccount.objects.get(user=user).reserved == 0
    assert fal.requests("submit") == []


# --- 3. An adopted job records its fal cost ---------------------------------------------------


def a_submit_without_answer(user) -> tuple[Generation, str]:
    """A generation whose submit got no answer, and the job that submit left on fal."""
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    generation.refresh_from_db()
    if not generation.fal_request_id:  # accept's task runs at commit: not in a test's atomic
        services.submit(generation_id=generation.pk)
        generation.refresh_from_db()
    request_id = generation.fal_request_id
    assert request_id and generation.fal_submit_count == 1
    # The answer was lost: the generation knows neither the job nor its cost, and its
    # grace period is over (a resubmit is due).
    Generation.objects.filter(pk=generation.pk).update(
        status="submitting",
        fal_request_id="",
        fal_cost_usd=None,
        submitted_at=None,
        next_poll_at=None,
        lease_until=timezone.now() - timedelta(seconds=1),
    )
    return generation, request_id


def test_a_job_adopted_from_a_webhook_records_what_fal_bills_for_it(client, fal, user):
    generation, request_id = a_submit_without_answer(user)
    detail = [{"msg": "The content was flagged.", "type": "content_policy_violation"}]

    response = post_webhook(client, fal, generation, error_webhook(request_id, 422, detail))

    assert response.status_code == 200
    generation.refresh_from_db()
    assert (generation.fal_request_id, generation.error_code) == (request_id, "content_policy")
    # fal bills a content-policy refusal: the overview needs its cost.
    assert generation.fal_cost_usd == COST_8S_1080P_AUDIO
    assert generation.fal_cost_usd == queued(user).fal_cost_usd  # as at a submit's answer


# --- 4. The fal user id is noted by services.account ------------------------------------------


def test_the_first_fal_user_id_is_noted_once_by_the_account_service(caplog):
    with caplog.at_level(logging.INFO, logger="generations"):
        account.note_webhook_user_id("fal-user-7")
        account.note_webhook_user_id("fal-user-8")
        account.note_webhook_user_id("")

    assert FalAccount.objects.get().webhook_user_id_seen == "fal-user-7"
    assert caplog.text.count("event=fal_webhook_user_id") == 1


# --- 5. Our own surplus job's webhook ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the live server reads committed rows
def test_webhook_of_our_own_surplus_job_is_acknowledged_and_changes_nothing(
    fake_fal_factory, settings, live_server, user, caplog
):
    """A submit had no answer; its resubmit is on the wire when the first job's webhook
    arrives and is adopted; the resubmit's job is then surplus. fal delivers that job's
    webhook too: it must get a 200 (fal would retry a refusal for two hours) and move
    neither the generation nor the ledger."""
    settings.FAL_KEY = "test-key-id:test-key-secret"
    settings.FAL_SIMULATED = False
    settings.FAL_HTTP_TIMEOUT = 5.0
    settings.PUBLIC_BASE_URL = live_server.url
    fake = fake_fal_factory(queue_seconds=0, run_seconds=0.5, webhook_retry_base=0.1)
    settings.FAL_WEBHOOK_JWKS_URL = fake.jwks_url
    # The first job's webhook waits 2 s: it must find the submit's answer already lost
    # (a_submit_without_answer) however slow this machine is, and come while the
    # resubmit still waits for its answer (3 s); the resubmit's job's webhook comes after
    # that answer (5 s), so we know the job as ours.
    fake.fail_next("webhook", "delay", seconds=2.0)
    generation, first_job = a_submit_without_answer(user)
    fake.fail_next("submit", "slow", seconds=3.0)  # the resubmit waits for its answer...
    fake.fail_next("webhook", "delay", seconds=5.0)  # ...and its job's webhook comes later

    with caplog.at_level(logging.INFO, logger="generations"):
        services.submit(generation_id=generation.pk)  # the resubmit
        [surplus_job] = [r.request_id for r in fake.requests("submit")[1:]]
        fake.wait_for(
            lambda: any(e["request_id"] == surplus_job for e in fake.webhook_log), timeout=15
        )

    generation.refresh_from_db()
    assert generation.fal_request_id == first_job
    assert generation.fal_submit_count == 2
    assert generation.fal_cost_usd == COST_8S_1080P_AUDIO  # recorded at adoption
    deliveries = [e for e in fake.webhook_log if e["request_id"] == surplus_job]
    assert [e["status"] for e in deliveries] == [200]  # acknowledged at once, not retried
    assert f"event=fal_webhook_surplus generation={generation.pk}" in caplog.text
    # The first job's video stands; the surplus one moved nothing.
    assert generation.status == "succeeded"
    assert kinds(generation) == ["hold", "capture"]


def test_webhook_of_a_job_we_cannot_tell_is_ours_is_still_refused(client, fal, user):
    # A resubmitted generation (two POSTs) and a signed webhook, with its URL token, of a
    # request id it never recorded: without a record that we sent it, it stays refused.
    generation = queued(user)
    Generation.objects.filter(pk=generation.pk).update(fal_submit_count=2)
    before = (generation.status, kinds(generation))

    response = post_webhook(
        client, fal, generation, error_webhook("someone-elses-job", 500, {"detail": "boom"})
    )

    assert response.status_code == 401
    generation.refresh_from_db()
    assert (generation.status, kinds(generation)) == before
