"""The numbers on the staff overview page: volumes, failures, money and work in flight.

A handful of aggregate queries, whatever the number of generations (each uses an index on
created_at or status). Money per day: credits captured and refunded (from the ledger),
what fal billed us (`fal_cost_usd` of the generations fal billed, by the day they ended)
and the margin, captured credits net of refunds in dollars minus fal's cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import LedgerEntry
from generations.costs import BILLED_BY_FAL
from generations.models import Generation
from generations.pricing import CREDITS_PER_USD

CAPTURE_DAYS = 14
TOP_SPENDERS = 10
SPEND_DAYS = 30
DUPLICATES_SHOWN = 50
ZERO_USD = Decimal("0.0000")

Kind = LedgerEntry.Kind


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
class DayMoney:
    day: date
    captured: int  # credits spent on videos (settled that day)
    released: int  # held credits returned on failure, cancel or a refund policy's share
    refunded: int  # captured credits given back by staff
    fal_cost_usd: Decimal  # what fal billed for the generations that ended that day

    @property
    def returned(self) -> int:
        """Credits that went back to users: released holds and refunds."""
        return self.released + self.refunded

    @property
    def margin_usd(self) -> Decimal:
        """Captured credits net of refunds, in dollars, minus fal's cost."""
        earned = Decimal(self.captured - self.refunded) / CREDITS_PER_USD
        return (earned - self.fal_cost_usd).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class PossibleDuplicate:
    """A generation whose submit was POSTed to fal more than once: fal may run (and bill)
    an extra job for each extra POST."""

    generation_id: object
    owner: str
    status: str
    created_at: datetime
    posts: int
    fal_cost_usd: Decimal | None

    @property
    def possible_extra_usd(self) -> Decimal | None:
        if self.fal_cost_usd is None:
            return None
        return self.fal_cost_usd * (self.posts - 1)


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
    money_per_day: list[DayMoney]
    possible_duplicates: list[PossibleDuplicate]
    possible_duplicates_count: int

    @property
    def fal_cost_total(self) -> Decimal:
        return sum((day.fal_cost_usd for day in self.money_per_day), ZERO_USD)

    @property
    def margin_total(self) -> Decimal:
        earned = Decimal(self.captured_total - self.refunded_total) / CREDITS_PER_USD
        return (earned - self.fal_cost_total).quantize(Decimal("0.01"))

    @property
    def credits_per_usd(self) -> int:
        return CREDITS_PER_USD

    @property
    def returned_total(self) -> int:
        return sum(day.returned for day in self.money_per_day)


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
    ledger_days = _ledger_per_day(first_day)
    fal_costs = _fal_cost_per_day(first_day)
    days = [(first_day + timedelta(days=i)).date() for i in range(CAPTURE_DAYS)]
    zero = {"captured": 0, "released": 0, "refunded": 0}
    money = [
        DayMoney(day=day, **ledger_days.get(day, zero), fal_cost_usd=fal_costs.get(day, ZERO_USD))
        for day in days
    ]
    peak = max((day.captured for day in money), default=0)
    bars = [
        DayBar(
            day=day.day,
            credits=day.captured,
            percent=round(100 * day.captured / peak) if peak else 0,
        )
        for day in money
    ]
    refunded = sum(day.refunded for day in money)
    duplicates, duplicates_count = _possible_duplicates(first_day)

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
        money_per_day=money,
        possible_duplicates=duplicates,
        possible_duplicates_count=duplicates_count,
    )


def _ledger_per_day(since: datetime) -> dict[date, dict[str, int]]:
    """Per day, in one query: credits captured, released (what a settlement freed without
    spending: all of a release, the rest of a partial capture) and refunded."""
    settlement = Q(kind__in=[Kind.CAPTURE, Kind.RELEASE])
    rows = (
        LedgerEntry.objects.filter(
            created_at__gte=since, kind__in=[Kind.CAPTURE, Kind.RELEASE, Kind.REFUND]
        )
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            captured=Sum("amount", filter=Q(kind=Kind.CAPTURE)),
            released=Sum(F("amount") - F("reserved_change"), filter=settlement),
            refunded=Sum("amount", filter=Q(kind=Kind.REFUND)),
        )
    )
    return {
        row["day"]: {
            "captured": -(row["captured"] or 0),
            "released": row["released"] or 0,
            "refunded": row["refunded"] or 0,
        }
        for row in rows
    }


def _fal_cost_per_day(since: datetime) -> dict[date, Decimal]:
    """What fal billed per day (by the day the generation ended), in one query."""
    return {
        day: total or ZERO_USD
        for day, total in Generation.objects.filter(BILLED_BY_FAL, completed_at__gte=since)
        .annotate(day=TruncDate("completed_at"))
        .values("day")
        .annotate(total=Sum("fal_cost_usd"))
        .values_list("day", "total")
    }


def _possible_duplicates(since: datetime) -> tuple[list[PossibleDuplicate], int]:
    """Generations of the period whose submit reached fal more than once (two queries)."""
    found = Generation.objects.filter(created_at__gte=since, fal_submit_count__gt=1)
    rows = found.order_by("-created_at").values(
        "pk", "owner__username", "status", "created_at", "fal_submit_count", "fal_cost_usd"
    )[:DUPLICATES_SHOWN]
    duplicates = [
        PossibleDuplicate(
            generation_id=row["pk"],
            owner=row["owner__username"],
            status=row["status"],
            created_at=row["created_at"],
            posts=row["fal_submit_count"],
            fal_cost_usd=row["fal_cost_usd"],
        )
        for row in rows
    ]
    count = len(duplicates) if len(duplicates) < DUPLICATES_SHOWN else found.count()
    return duplicates, count
