"""Forged fal webhooks: validly signed, but not about our job.

fal signs every customer's webhooks with the same keys (fal.md §2), so any fal user can
point a webhook of their own job at `/webhooks/fal/` and have it verify. Each attack below
is signed with the fake fal's key, as fal would sign it, and posted over real HTTP to the
live server; it must be refused with 401, logged, and move neither the generation nor the
ledger (an ERROR webhook would otherwise refund the hold, an OK one hand the user a video
of the attacker's choice).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from accounts.models import CreditAccount, LedgerEntry
from generations import services
from generations.models import Generation
from tests.factories import REQUEST_BODY

pytestmark = pytest.mark.django_db(transaction=True)  # the live server reads committed rows

ATTACKER_JOB = "attacker-job-0001"
ATTACKER_USER = "another-fal-customer"


@pytest.fixture
def site(settings, live_server, fake_fal):
    """Our site, public at the live server, verifying webhooks with the fake fal's keys."""
    settings.PUBLIC_BASE_URL = live_server.url
    settings.FAL_WEBHOOK_JWKS_URL = fake_fal.jwks_url
    settings.FAL_SIMULATED_QUEUE_SECONDS = 3600  # nothing but a webhook moves the job
    return fake_fal


@pytest.fixture
def queued(user, site) -> Generation:
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.status == "queued" and generation.fal_request_id
    return generation


@pytest.fixture
def victim(user, site) -> Generation:
    """Created by another user, same shape: its URL token is the one an attacker might hold."""
    from tests.factories import UserFactory

    generation = services.accept(user=UserFactory(credits=1000), params=REQUEST_BODY).generation
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    return generation


def error_body(request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "ERROR",
        "error": "Invalid status code: 422",
        "payload": {
            "detail": [
                {
                    "loc": ["body", "prompt"],
                    "msg": "The content was flagged by a content checker.",
                    "type": "content_policy_violation",
                }
            ]
        },
    }


def ok_body(request_id: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "OK",
        "error": None,
        "payload": {"video": {"url": "https://attacker.example/their-video.mp4"}},
    }


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


def snapshot(generation: Generation) -> tuple:
    generation.refresh_from_db()
    account = CreditAccount.objects.get(user=generation.owner)
    entries = list(
        LedgerEntry.objects.filter(account=account).order_by("id").values_list("kind", "amount")
    )
    return (
        generation.status,
        generation.fal_request_id,
        generation.fal_video_url,
        account.balance,
        account.reserved,
        entries,
    )


def assert_refused(status: int, generation: Generation, before: tuple, caplog) -> None:
    assert status == 401
    assert snapshot(generation) == before
    assert f"event=fal_webhook_rejected generation={generation.pk}" in caplog.text


def test_forged_webhook_without_token_is_refused(site, queued, caplog):
    before = snapshot(queued)
    url = with_query(services.fal_webhook_url(queued), token=None)
    status = site.forge_webhook(
        url, error_body(queued.fal_request_id), request_id=queued.fal_request_id
    )
    assert_refused(status, queued, before, caplog)


def test_forged_webhook_with_the_token_of_another_generation_is_refused(
    site, queued, victim, caplog
):
    before = snapshot(queued)
    other_token = dict(parse_qsl(urlsplit(services.fal_webhook_url(victim)).query))["token"]
    url = with_query(services.fal_webhook_url(queued), token=other_token)
    status = site.forge_webhook(
        url, ok_body(queued.fal_request_id), request_id=queued.fal_request_id
    )
    assert_refused(status, queued, before, caplog)


def test_forged_webhook_with_other_request_id_is_refused(site, queued, caplog):
    # Even holding the right URL (a leaked log line), another job's webhook moves nothing.
    before = snapshot(queued)
    status = site.forge_webhook(
        services.fal_webhook_url(queued), error_body(ATTACKER_JOB), request_id=ATTACKER_JOB
    )
    assert_refused(status, queued, before, caplog)


def test_forged_webhook_whose_body_request_id_is_not_the_signed_one_is_refused(
    site, queued, caplog
):
    # fal signed the attacker's job id; the body claims to be about our job.
    before = snapshot(queued)
    status = site.forge_webhook(
        services.fal_webhook_url(queued), error_body(queued.fal_request_id), request_id=ATTACKER_JOB
    )
    assert_refused(status, queued, before, caplog)


def test_forged_webhook_of_another_fal_user_is_refused_when_the_user_id_is_pinned(
    site, settings, queued, caplog
):
    settings.FAL_WEBHOOK_USER_ID = site.config.user_id  # our own fal account
    before = snapshot(queued)
    status = site.forge_webhook(
        services.fal_webhook_url(queued),
        error_body(queued.fal_request_id),
        request_id=queued.fal_request_id,
        user_id=ATTACKER_USER,
    )
    assert_refused(status, queued, before, caplog)


def test_forged_webhook_cannot_make_a_generation_adopt_a_job_without_the_token(site, user, caplog):
    # A submit with no answer leaves the generation waiting to adopt its job from fal's
    # webhook; only the URL fal was given (token included) may do that.
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    Generation.objects.filter(pk=generation.pk).update(status="submitting", fal_submit_count=1)
    before = snapshot(generation)
    url = with_query(services.fal_webhook_url(generation), token=None)
    status = site.forge_webhook(url, ok_body(ATTACKER_JOB), request_id=ATTACKER_JOB)
    assert_refused(status, generation, before, caplog)


def test_the_webhook_fal_was_given_still_works(site, queued):
    # The control: the same forging path, with everything a real delivery carries.
    status = site.forge_webhook(
        services.fal_webhook_url(queued),
        error_body(queued.fal_request_id),
        request_id=queued.fal_request_id,
    )
    assert status == 200
    queued.refresh_from_db()
    assert (queued.status, queued.error_code) == ("failed", "content_policy")
    assert LedgerEntry.objects.filter(generation=queued, kind="release").count() == 1
