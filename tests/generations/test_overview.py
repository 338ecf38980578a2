"""The staff overview page: renders empty and with data, and its numbers are right."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from accounts.models import LedgerEntry
from generations import services
from generations.models import FalAccount, Generation, RefundPolicy
from generations.overview import overview
from tests.factories import GenerationFactory, UserFactory

OVERVIEW = "admin:generations_overview"


def finished(owner, status: str, cost: int = 100) -> Generation:
    generation = GenerationFactory(owner=owner, cost_credits=cost)
    ledger.hold(generation=generation)
    if status == Generation.Status.SUCCEEDED:
        ledger.capture(generation=generation)
    else:
        ledger.release(generation=generation)
    Generation.objects.filter(pk=generation.pk).update(status=status, completed_at=timezone.now())
    return generation


def test_overview_renders_empty(admin_client_for, superuser):
    response = admin_client_for(superuser).get(reverse(OVERVIEW))

    assert response.status_code == 200
    body = response.content.decode()
    assert "No credits spent in the last 30 days." in body
    stats = response.context["stats"]
    assert (stats.in_flight, stats.failure_rate, stats.oldest_in_flight_at) == (0, None, None)
    assert len(stats.captured_per_day) == 14
    assert all(bar.credits == 0 and bar.percent == 0 for bar in stats.captured_per_day)


def test_overview_counts_statuses_failures_spend_and_work_in_flight(admin_client_for, superuser):
    big, small = (
        UserFactory(username="big", credits=5000),
        UserFactory(username="small", credits=5000),
    )
    for _ in range(3):
        finished(big, Generation.Status.SUCCEEDED, cost=400)
    finished(small, Generation.Status.SUCCEEDED, cost=100)
    finished(small, Generation.Status.FAILED)
    old = GenerationFactory(owner=small, status=Generation.Status.QUEUED)
    Generation.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    GenerationFactory(owner=small, status=Generation.Status.RUNNING)
    ancient = GenerationFactory(owner=small, status=Generation.Status.SUCCEEDED)
    Generation.objects.filter(pk=ancient.pk).update(created_at=timezone.now() - timedelta(days=9))

    stats = overview(now=timezone.now())

    counts = {row.status: (row.today, row.week) for row in stats.by_status}
    assert counts["succeeded"][1] == 4  # the 9-day-old one is outside the week
    assert counts["failed"] == (1, 1)
    assert counts["running"] == (1, 1)
    assert (stats.finished_week, stats.failed_week) == (5, 1)
    assert stats.failure_rate == 1 / 5
    assert stats.in_flight == 2
    assert timedelta(hours=2) <= stats.oldest_in_flight_age < timedelta(hours=2, minutes=5)
    assert [(s.username, s.credits) for s in stats.top_spenders] == [("big", 1200), ("small", 100)]
    assert stats.captured_per_day[-1].credits == 1300
    assert stats.captured_per_day[-1].percent == 100
    assert stats.captured_total == 1300

    response = admin_client_for(superuser).get(reverse(OVERVIEW))
    body = response.content.decode()
    assert response.status_code == 200
    assert "20%" in body and "1,300" in body and "big" in body
    assert "width: 100%" in body


def test_overview_is_linked_from_the_admin_index(admin_client_for, superuser):
    response = admin_client_for(superuser).get(reverse("admin:index"))
    assert reverse(OVERVIEW) in response.content.decode()


def test_overview_is_staff_only(admin_client_for, user, moderator):
    assert admin_client_for(user).get(reverse(OVERVIEW)).status_code == 302
    assert admin_client_for(moderator).get(reverse(OVERVIEW)).status_code == 200


# --- money per day: captured, refunded, fal cost, margin; possible duplicate fal jobs --------


def at(generation: Generation, when) -> None:
    """Move a finished generation and its ledger entries to another moment."""
    Generation.objects.filter(pk=generation.pk).update(created_at=when, completed_at=when)
    LedgerEntry.objects.filter(generation=generation).update(created_at=when)


def billed(owner, status: str, cost: int, fal_cost: str, **fields) -> Generation:
    generation = GenerationFactory(
        owner=owner,
        cost_credits=cost,
        status=Generation.Status.QUEUED,
        fal_request_id=f"req-{cost}-{status}-{fal_cost}",
        fal_cost_usd=Decimal(fal_cost),
        **fields,
    )
    ledger.hold(generation=generation)
    return generation


@pytest.fixture
def known_money(superuser):
    """Today: a success (320 cr, fal $3.20) refunded by staff; a content-policy failure
    charged 50% (160 of 320, fal $3.20); an upstream failure (released, fal does not bill
    it); a cancel after fal started (released by the default policy, fal $1.60); a cancel
    before it started (released, not billed). Yesterday: a success (80 cr, fal $0.80).
    In flight: a generation POSTed to fal three times (fal $3.20 each)."""
    user = UserFactory(username="payer", credits=10_000)
    RefundPolicy.objects.filter(reason=RefundPolicy.Reason.CONTENT_POLICY).update(
        action="share", share_percent=50
    )
    ok = billed(user, "ok", 320, "3.20")
    ledger.capture(generation=ok)
    Generation.objects.filter(pk=ok.pk).update(status="succeeded", completed_at=timezone.now())
    ledger.refund(generation=ok, reason="goodwill", actor=superuser)

    flagged = billed(user, "flagged", 320, "3.20")
    services.fail(generation_id=flagged.pk, code="content_policy", message="flagged")
    broken = billed(user, "broken", 320, "3.20")
    services.fail(generation_id=broken.pk, code="upstream_error", message="runner died")
    late = billed(user, "late", 320, "1.60", started_at=timezone.now())
    services.cancel(generation=late, actor=user)
    early = billed(user, "early", 320, "1.60")
    services.cancel(generation=early, actor=user)

    yesterday = billed(user, "yesterday", 80, "0.80")
    ledger.capture(generation=yesterday)
    Generation.objects.filter(pk=yesterday.pk).update(status="succeeded")
    at(yesterday, timezone.now() - timedelta(days=1))

    duplicate = billed(user, "dup", 320, "3.20", fal_submit_count=3)
    return {"duplicate": duplicate, "flagged": flagged, "late": late}


def test_overview_money_per_day_for_known_generations(known_money):
    stats = overview(now=timezone.now())

    today, yesterday = stats.money_per_day[-1], stats.money_per_day[-2]
    assert len(stats.money_per_day) == 14
    assert (today.captured, today.released, today.refunded) == (480, 160 + 320 + 320 + 320, 320)
    assert today.returned == 1440
    assert today.fal_cost_usd == Decimal("8.00")  # 3.20 + 3.20 + 1.60: what fal rendered
    assert today.margin_usd == Decimal("-6.40")  # (480 - 320) / 100 - 8.00
    assert (yesterday.captured, yesterday.returned) == (80, 0)
    assert (yesterday.fal_cost_usd, yesterday.margin_usd) == (Decimal("0.80"), Decimal("0.00"))
    assert all(day.captured == day.returned == 0 for day in stats.money_per_day[:-2])
    assert stats.fal_cost_total == Decimal("8.80")
    assert stats.margin_total == Decimal("-6.40")
    assert (stats.captured_total, stats.refunded_total, stats.returned_total) == (560, 320, 1440)
    [dup] = stats.possible_duplicates
    assert (dup.generation_id, dup.posts) == (known_money["duplicate"].pk, 3)
    assert dup.possible_extra_usd == Decimal("6.40")
    assert stats.possible_duplicates_count == 1


def test_overview_page_shows_money_and_duplicates(admin_client_for, superuser, known_money):
    response = admin_client_for(superuser).get(reverse(OVERVIEW))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Money per day, last 14 days" in body
    assert '<td class="num">8.00</td><td class="num">-6.40</td>' in body
    assert "1,440" in body
    assert "Possible duplicate fal jobs" in body
    assert (
        reverse("admin:generations_generation_change", args=[known_money["duplicate"].pk]) in body
    )
    assert "6.40" in body


def test_overview_money_empty(admin_client_for, superuser):
    response = admin_client_for(superuser).get(reverse(OVERVIEW))
    stats = response.context["stats"]
    assert all(day.fal_cost_usd == 0 and day.margin_usd == 0 for day in stats.money_per_day)
    assert "No generation was sent to fal more than once." in response.content.decode()


def test_overview_costs_a_fixed_handful_of_queries_whatever_the_volume(known_money):
    with CaptureQueriesContext(connection) as few:
        overview(now=timezone.now())
    user = UserFactory(username="volume", credits=100_000)
    for i in range(30):
        generation = billed(user, f"v{i}", 80, "0.80", fal_submit_count=1 + i % 3)
        ledger.capture(generation=generation)
        Generation.objects.filter(pk=generation.pk).update(status="succeeded")
        at(generation, timezone.now() - timedelta(days=i % 14))

    with CaptureQueriesContext(connection) as many:
        stats = overview(now=timezone.now())

    assert len(few) == len(many) == 8, [q["sql"][:80] for q in many]
    assert stats.possible_duplicates_count == 1 + 20


def test_overview_shows_the_fal_user_id_of_the_first_verified_webhook(
    admin_client_for, superuser, settings
):
    FalAccount.objects.update_or_create(pk=1, defaults={"webhook_user_id_seen": "fal-user-42"})
    settings.FAL_WEBHOOK_USER_ID = ""
    page = admin_client_for(superuser).get(reverse("admin:generations_overview")).content.decode()
    assert "fal-user-42" in page and "set <code>FAL_WEBHOOK_USER_ID</code>" in page

    settings.FAL_WEBHOOK_USER_ID = "fal-user-42"
    page = admin_client_for(superuser).get(reverse("admin:generations_overview")).content.decode()
    assert "fal-user-42" in page and "set <code>FAL_WEBHOOK_USER_ID</code>" not in page
