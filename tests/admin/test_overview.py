"""The staff overview page: renders empty and with data, and its numbers are right."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from generations.models import Generation
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
