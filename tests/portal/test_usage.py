"""The credits page's chart of credits spent per day, and the ledger download."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from accounts.models import LedgerEntry
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db

EXPORT = "/credits/export.csv"


def html(response) -> str:
    return response.content.decode()


def spend(user, credits: int, days_ago: int = 0) -> None:
    generation = GenerationFactory(owner=user, cost_credits=credits)
    ledger.hold(generation=generation)
    capture = ledger.capture(generation=generation)
    when = datetime.now(UTC) - timedelta(days=days_ago)
    LedgerEntry.objects.filter(pk=capture.pk).update(created_at=when)


def chart_table(page: str) -> list[tuple[str, str]]:
    table = re.search(
        r'<table class="visually-hidden" data-testid="spending-table">(.*?)</table>', page, re.S
    )
    assert table, "the chart's table of numbers"
    return re.findall(r'<time datetime="([\d-]+)">.*?</time></td><td>([\d,]+)</td>', table.group(1))


def test_chart_shows_thirty_days_with_bars_for_days_with_spending(logged_in, user, other_user):
    spend(user, 320)
    spend(user, 160, days_ago=3)
    spend(other_user, 999)
    strangers = str(LedgerEntry.objects.get(account__user=other_user, kind="capture").generation_id)

    page = html(logged_in.get(reverse("credits")))

    days = chart_table(page)
    today = timezone.now().astimezone(UTC).date()
    assert len(days) == 30
    assert days[-1] == (today.isoformat(), "320")
    assert days[-4] == ((today - timedelta(days=3)).isoformat(), "160")
    assert sum(1 for _, credits in days if credits == "0") == 28
    # Another user's spending shows nowhere: not as an amount (a timestamp's microseconds or
    # the CSRF token may hold the digits "999", so match a whole number) nor as a link.
    assert not re.search(r"(?<![\w.])999(?![\w])", page)
    assert strangers not in page
    # The SVG: named and described for assistive technology, one bar per day with spending.
    svg = re.search(r"<svg[^>]*data-testid=\"spending-chart\"[^>]*>(.*?)</svg>", page, re.S)
    assert svg and 'role="img"' in svg.group(0)
    assert 'aria-labelledby="spending-chart-title spending-chart-desc"' in svg.group(0)
    assert "480 credits in all; the most, 320," in svg.group(1)
    bars = re.findall(r'<rect [^>]*height="(\d+)"[^>]*data-credits="(\d+)"', svg.group(1))
    assert sorted(bars) == [("100", "320"), ("50", "160")]
    assert "<script" not in svg.group(0) and "https://" not in svg.group(0)


def test_chart_says_when_nothing_was_spent(logged_in):
    page = html(logged_in.get(reverse("credits")))
    assert "Nothing was spent in this period." in page
    assert "Last 30 days (UTC)" in page
    assert all(credits == "0" for _, credits in chart_table(page))
    svg = re.search(r"<svg[^>]*data-testid=\"spending-chart\".*?</svg>", page, re.S)
    assert svg and "<rect" not in svg.group(0)


def test_credits_page_links_to_the_csv_download(logged_in):
    page = html(logged_in.get(reverse("credits")))
    assert f'href="{EXPORT}"' in page
    assert reverse("ledger-csv") == EXPORT


def test_download_is_an_attachment_of_the_users_own_ledger(logged_in, user, other_user):
    ledger.grant(user=other_user, amount=7, reason="Not yours")
    ledger.adjust(user=user, amount=-5, reason="=cmd")
    response = logged_in.get(EXPORT)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.now().date().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="ledger-{today}.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["kind"], row["amount"], row["reason"]) for row in rows] == [
        ("grant", "1000", "test credits"),
        ("adjustment", "-5", "'=cmd"),
    ]


def test_download_needs_login(client):
    response = client.get(EXPORT)
    assert response.status_code == 302
    assert "login" in response["Location"]
