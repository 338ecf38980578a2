"""What a user spent per day (accounts.selectors.spent_per_day): the credits page's chart.

Marked `pg`: grouping by calendar day in a time zone is database SQL, so `make test` runs
these on PostgreSQL too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from accounts import ledger
from accounts.models import LedgerEntry
from accounts.selectors import SPENDING_DAYS, spent_per_day
from tests.factories import GenerationFactory

pytestmark = [pytest.mark.pg, pytest.mark.django_db]

TODAY = date(2026, 3, 30)


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def backdate(entry: LedgerEntry, when: datetime) -> None:
    # Arranging history: entries are stamped with the wall clock when they are posted.
    LedgerEntry.objects.filter(pk=entry.pk).update(created_at=when)


def spend(user, credits: int, when: datetime) -> LedgerEntry:
    """A video of `credits` made for `user`, its capture dated `when`."""
    generation = GenerationFactory(owner=user, cost_credits=credits)
    hold = ledger.hold(generation=generation)
    backdate(hold, when)
    capture = ledger.capture(generation=generation)
    backdate(capture, when)
    return capture


def by_day(user, **kwargs) -> dict[date, int]:
    return {day.day: day.credits for day in spent_per_day(user=user, today=TODAY, **kwargs).days}


def test_thirty_days_oldest_first_with_zero_for_days_without_spending(user):
    spend(user, 320, at(TODAY))
    spend(user, 160, at(TODAY, hour=23, minute=59))
    spend(user, 80, at(TODAY - timedelta(days=29), hour=0))

    spending = spent_per_day(user=user, today=TODAY)

    assert [day.day for day in spending.days] == [
        TODAY - timedelta(days=n) for n in reversed(range(SPENDING_DAYS))
    ]
    credits = {day.day: day.credits for day in spending.days}
    assert credits[TODAY] == 480
    assert credits[TODAY - timedelta(days=29)] == 80
    assert sum(1 for value in credits.values() if value == 0) == 28
    assert spending.total == 560
    assert spending.busiest is not None and spending.busiest.day == TODAY


def test_spending_outside_the_window_is_left_out(user):
    spend(user, 320, at(TODAY - timedelta(days=30), hour=23, minute=59))
    spend(user, 320, at(TODAY + timedelta(days=1), hour=0))
    assert spent_per_day(user=user, today=TODAY).total == 0
    assert spent_per_day(user=user, today=TODAY).busiest is None


def test_spent_counts_captures_and_policy_charges_only(user):
    spend(user, 320, at(TODAY))
    released = GenerationFactory(owner=user, cost_credits=400)
    ledger.hold(generation=released)
    ledger.release(generation=released, reason="upstream_error")
    charged = GenerationFactory(owner=user, cost_credits=200)
    ledger.hold(generation=charged)
    ledger.capture_part(generation=charged, credits=50, reason="content_policy: half")
    refunded = GenerationFactory(owner=user, cost_credits=100)
    ledger.hold(generation=refunded)
    ledger.capture(generation=refunded)
    ledger.refund(generation=refunded, reason="Support: the video froze")
    ledger.adjust(user=user, amount=-10, reason="correction")
    for entry in LedgerEntry.objects.filter(account__user=user):
        backdate(entry, at(TODAY, hour=9))

    # 320 + 50 (the policy's charge) + 100 (captured, then refunded: still spent that day)
    assert by_day(user)[TODAY] == 470


def test_only_the_users_own_spending(user, other_user):
    spend(other_user, 320, at(TODAY))
    spend(user, 80, at(TODAY))
    assert by_day(user)[TODAY] == 80
    assert by_day(other_user)[TODAY] == 320


def test_days_are_calendar_days_in_the_given_time_zone(user):
    spend(user, 320, at(TODAY - timedelta(days=1), hour=23, minute=30))
    assert by_day(user)[TODAY - timedelta(days=1)] == 320  # UTC by default
    berlin = by_day(user, tz=ZoneInfo("Europe/Berlin"))
    assert berlin[TODAY] == 320 and berlin[TODAY - timedelta(days=1)] == 0
    assert spent_per_day(user=user, tz=ZoneInfo("Europe/Berlin")).zone == "Europe/Berlin"


def test_bars_are_scaled_to_the_busiest_day(user):
    spend(user, 400, at(TODAY))
    spend(user, 100, at(TODAY - timedelta(days=1)))
    days = spent_per_day(user=user, today=TODAY).days
    assert [(d.percent, d.top) for d in days[-2:]] == [(25, 75), (100, 0)]
    assert days[0].percent == 0
    assert [d.x for d in days[:3]] == [0, 10, 20]


def test_one_query(user, django_assert_num_queries):
    for n in range(5):
        spend(user, 80, at(TODAY - timedelta(days=n)))
    with django_assert_num_queries(1):
        spending = spent_per_day(user=user, today=TODAY)
    assert spending.total == 400


def test_today_defaults_to_now_in_the_time_zone(user):
    spend(user, 320, datetime.now(UTC))
    spending = spent_per_day(user=user)
    assert spending.last_day == datetime.now(UTC).date()
    assert spending.days[-1].credits == 320
