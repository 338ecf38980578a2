from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import CreditAccount, LedgerEntry, User

# What "spent" means on the owner's pages: captures, a refund policy's partial charge
# (`ledger.capture_part`) included. Holds only reserve, releases return held credits, and
# refunds or corrections are not subtracted: the chart shows what videos cost that day.
SPENT_KINDS = (LedgerEntry.Kind.CAPTURE,)
SPENDING_DAYS = 30
# The chart's drawing units (an SVG viewBox of SPENDING_DAYS * BAR_STEP by 100).
BAR_STEP = 10


@dataclass(frozen=True)
class CreditSummary:
    balance: int
    reserved: int
    owed: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.reserved


def credit_summary(*, user: User) -> CreditSummary:
    row = (
        CreditAccount.objects.filter(user_id=user.pk).values("balance", "reserved", "owed").first()
    )
    return CreditSummary(**row) if row else CreditSummary(balance=0, reserved=0)


@dataclass(frozen=True)
class DaySpent:
    """Credits spent on one day, and its bar: `percent` of the busiest day's height, at
    `x` in the chart's drawing units."""

    day: date
    credits: int
    percent: int
    x: int

    @property
    def top(self) -> int:
        """Where the bar starts, from the top of a chart 100 units high."""
        return 100 - self.percent


@dataclass(frozen=True)
class Spending:
    days: list[DaySpent]
    zone: str  # the time zone the days are counted in, by name

    @property
    def total(self) -> int:
        return sum(day.credits for day in self.days)

    @property
    def first_day(self) -> date:
        return self.days[0].day

    @property
    def last_day(self) -> date:
        return self.days[-1].day

    @property
    def busiest(self) -> DaySpent | None:
        """The day with the most spent (the latest of equals), or None if nothing was."""
        peak = max(self.days, key=lambda day: (day.credits, day.day), default=None)
        return peak if peak is not None and peak.credits else None

    @property
    def width(self) -> int:
        return len(self.days) * BAR_STEP


def spent_per_day(
    *, user: User, days: int = SPENDING_DAYS, tz: tzinfo = UTC, today: date | None = None
) -> Spending:
    """Credits `user` spent (SPENT_KINDS) on each of the last `days` days up to `today`
    (default: today in `tz`), oldest first, days with nothing spent at zero. Days are
    calendar days in `tz`. One aggregate query."""
    last = today or timezone.now().astimezone(tz).date()
    first = last - timedelta(days=days - 1)
    rows = (
        LedgerEntry.objects.filter(
            account__user_id=user.pk,
            kind__in=SPENT_KINDS,
            created_at__gte=datetime.combine(first, time.min, tzinfo=tz),
            created_at__lt=datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz),
        )
        .annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(spent=Sum("amount"))
        .values_list("day", "spent")
    )
    spent = {day: -amount for day, amount in rows}
    peak = max(spent.values(), default=0)
    return Spending(
        zone=str(tz),
        days=[
            DaySpent(
                day=day,
                credits=spent.get(day, 0),
                percent=round(100 * spent.get(day, 0) / peak) if peak > 0 else 0,
                x=index * BAR_STEP,
            )
            for index, day in enumerate(first + timedelta(days=n) for n in range(days))
        ],
    )
