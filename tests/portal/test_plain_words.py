"""Plain words (issue 14): what a user reads names no vendor and shows no internal code or
upstream message; each failure reason has one sentence of advice and says when nothing
was charged. Staff keep the raw details in the admin; the API keeps its error codes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from generations import wording
from generations.models import Generation, RefundPolicy
from generations.services import fail
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db

RAW = "fal said: HTTP 422 ValidationError image_url unreachable (req-9f3c)"
VENDOR = re.compile(r"\bfal\b|fal\.ai|fal-ai", re.IGNORECASE)
FOOTER = "Powered by Veo 3.1"


def without_footer(page: str) -> str:
    head, footer = page.split('<footer class="site-footer">')
    assert FOOTER in footer
    assert not VENDOR.search(footer)
    return head


def readable(page: str) -> str:
    """What a person reads: the text, without tags, attributes or the footer."""
    text = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


def failed(owner, code: str, **fields) -> Generation:
    """A generation failed by the service with `code` and fal's raw words, its hold released
    (or settled by the refund policy) as in life."""
    generation = GenerationFactory(owner=owner, status="running", fal_request_id="req-9f3c")
    ledger.hold(generation=generation)
    fail(generation_id=generation.pk, code=code, message=RAW, raw=RAW)
    Generation.objects.filter(pk=generation.pk).update(**fields)
    generation.refresh_from_db()
    return generation


def pages_of(client, generation: Generation) -> dict[str, str]:
    """Every place a generation's status shows: its gallery card, the studio's compact
    card, the polled card and status panel, and its own page."""
    partial = reverse("generation-status-partial", args=[generation.pk])
    return {
        "gallery": client.get(reverse("generation-list")).content.decode(),
        "studio": client.get(reverse("studio")).content.decode(),
        "card": client.get(partial).content.decode(),
        "panel": client.get(partial, {"for": "detail"}).content.decode(),
        "detail": client.get(reverse("generation-detail", args=[generation.pk])).content.decode(),
    }


def assert_plain(page: str, *, code: str = "") -> None:
    text = readable(page.split('<footer class="site-footer">')[0])
    assert not VENDOR.search(text), VENDOR.search(text)
    assert RAW not in page and "req-9f3c" not in page and "ValidationError" not in page
    if "_" in code:  # an identifier, not a word ("canceled" is both)
        assert f"({code})" not in page
        assert not re.search(rf"\b{code}\b", text), code


@pytest.mark.parametrize("code", [*wording.FAILURE_REASONS, "some_new_code"])
def test_every_failure_reason_is_plain_with_advice_and_says_nothing_was_charged(client, user, code):
    client.force_login(user)
    generation = failed(user, code)
    reason = wording.FAILURE_REASONS.get(code, wording.UNKNOWN_FAILURE)
    for where, page in pages_of(client, generation).items():
        assert_plain(page, code=code)
        text = readable(page)
        assert reason.what in text, where
        if where != "studio":  # the compact card gives the reason only
            assert reason.advice in text, where
        assert "Nothing was charged: 320 credits returned." in text, where
    without_footer(pages_of(client, generation)["detail"])


def test_a_canceled_video_says_so_with_advice_and_nothing_charged(client, user):
    client.force_login(user)
    generation = GenerationFactory(owner=user, status="pending")
    ledger.hold(generation=generation)
    client.post(reverse("generation-cancel", args=[generation.pk]))
    generation.refresh_from_db()
    assert generation.is_canceled
    for where, page in pages_of(client, generation).items():
        assert_plain(page, code="canceled")
        assert wording.CANCELED.what in readable(page), where
        assert "Nothing was charged: 320 credits returned." in readable(page), where


def test_a_failure_billed_by_the_refund_policy_says_what_was_spent_not_nothing(client, user):
    client.force_login(user)
    RefundPolicy.objects.update_or_create(
        reason=RefundPolicy.Reason.CONTENT_POLICY,
        defaults={"action": RefundPolicy.Action.SHARE, "share_percent": 25},
    )
    generation = failed(user, "content_policy")
    assert generation.policy_charged_credits == 80
    for where, page in pages_of(client, generation).items():
        assert_plain(page, code="content_policy")
        text = readable(page)
        assert "Nothing was charged" not in text, where
        assert "This attempt was billed, so 80 credits were spent and 240 returned." in text
    # The page's ledger keeps the entries, not the policy's internal reason.
    detail = readable(pages_of(client, generation)["detail"])
    assert "by policy" not in detail


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "pending"},
        {"status": "submitting"},
        {"status": "queued", "fal_queue_position": 0},
        {"status": "queued", "fal_queue_position": 3},
        {"status": "running"},
    ],
    ids=lambda fields: "-".join(str(v) for v in fields.values()),
)
def test_videos_in_progress_name_no_vendor(client, user, fields):
    client.force_login(user)
    now = timezone.now()
    generation = GenerationFactory(
        owner=user,
        fal_request_id="req-9f3c",
        submitted_at=now - timedelta(seconds=5),
        started_at=now,
        **fields,
    )
    for page in pages_of(client, generation).values():
        assert_plain(page)


def test_a_succeeded_video_page_shows_no_internal_ids(client, user):
    client.force_login(user)
    generation = GenerationFactory(owner=user, status="succeeded", fal_request_id="req-9f3c")
    Generation.objects.filter(pk=generation.pk).update(completed_at=timezone.now())
    for page in pages_of(client, generation).values():
        assert_plain(page)


def test_the_api_keeps_the_code_and_gives_the_plain_message(user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user)
    generation = failed(user, "invalid_input")
    error = api.get(f"/api/v1/generations/{generation.pk}/").json()["error"]
    assert error == {
        "code": "invalid_input",
        "message": "The video could not be made from this image and prompt. "
        "Use another image or change the prompt, then try again.",
    }


def test_staff_keep_the_raw_details_in_the_admin(client, user, staff_user):
    generation = failed(user, "upstream_error")
    client.force_login(staff_user)
    page = client.get(reverse("admin:generations_generation_change", args=[generation.pk]))
    assert RAW in page.content.decode()
    assert "upstream_error" in page.content.decode()
