"""The numbers on the staff overview page: volumes, failures, money and work in flight.

A handful of aggregate queries, whatever the number of generations (each uses an index on
created_at or status).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import LedgerEntry
from generations.models import Generation

CAPTURE_DAYS = 14
TOP_SPENDERS = 10
SPEND_DAYS = 30


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    today: int
    week: int


@dataclass(frozen=True)
class DayBar:
    day: date
    credits: int
    percent: int  # of the busiest day, for the bar's width


@dataclass(frozen=True)
class Spender:
    user_id: int
    username: str
    credits: int


@dataclass(frozen=True)
class Overview:
    by_status: list[StatusCount]
    total_today: int
    total_week: int
    finished_week: int
    failed_week: int
    failure_rate: float | None  # failed / finished in the last 7 days; None if none finished
    captured_per_day: list[DayBar]
    captured_total: int
    refunded_total: int
    top_spenders: list[Spender]
    in_flight: int
    oldest_in_flight_at: datetime | None
    oldest_in_flight_age: timedelta | None


def _status_counts(since: datetime) -> dict[str, int]:
    return dict(
        Generation.objects.filter(created_at__gte=since)
        .values("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )


def overview(*, now: datetime) -> Overview:
    local_now = timezone.localtime(now)
    today_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    week_start = now - timedelta(days=7)
    today, week = _status_counts(today_start), _status_counts(week_start)
    by_status = [
        StatusCount(status=value, label=label, today=today.get(value, 0), week=week.get(value, 0))
        for value, label in Generation.Status.choices
    ]

    finished = Generation.objects.filter(
        completed_at__gte=week_start,
        status__in=[Generation.Status.SUCCEEDED, Generation.Status.FAILED],
    ).aggregate(finished=Count("pk"), failed=Count("pk", filter=Q(status=Generation.Status.FAILED)))

    first_day = today_start - timedelta(days=CAPTURE_DAYS - 1)
    captured = dict(
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CAPTURE, created_at__gte=first_day)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(total=Sum("amount"))
        .values_list("day", "total")
    )
    days = [(first_day + timedelta(days=i)).date() for i in range(CAPTURE_DAYS)]
    peak = max((-captured.get(day, 0) for day in days), default=0)
    bars = [
        DayBar(
            day=day,
            credits=-captured.get(day, 0),
            percent=round(100 * -captured.get(day, 0) / peak) if peak else 0,
        )
        for day in days
    ]
    refunded = (
        LedgerEntry.objects.filter(
            kind=LedgerEntry.Kind.REFUND, created_at__gte=first_day
        ).aggregate(total=Sum("amount"))["total"]
        or 0
    )

    spend_since = now - timedelta(days=SPEND_DAYS)
    spenders = [
        Spender(
            user_id=row["account__user_id"],
            username=row["account__user__username"],
            credits=-row["total"],
        )
        for row in LedgerEntry.objects.filter(
            kind=LedgerEntry.Kind.CAPTURE, created_at__gte=spend_since
        )
        .values("account__user_id", "account__user__username")
        .annotate(total=Sum("amount"))
        .order_by("total", "account__user__username")[:TOP_SPENDERS]
    ]

    flight = Generation.objects.in_flight().aggregate(n=Count("pk"), oldest=Min("created_at"))
    oldest = flight["oldest"]
    return Overview(
        by_status=by_status,
        total_today=sum(today.values()),
        total_week=sum(week.values()),
        finished_week=finished["finished"],
        failed_week=finished["failed"],
        failure_rate=(finished["failed"] / finished["finished"]) if finished["finished"] else None,
        captured_per_day=bars,
        captured_total=sum(bar.credits for bar in bars),
        refunded_total=refunded,
        top_spenders=spenders,
        in_flight=flight["n"],
        oldest_in_flight_at=oldest,
        oldest_in_flight_age=(now - oldest) if oldest else None,
    )
