"""State, read from the database at scrape time: a fixed number of aggregate queries,
whatever the number of rows, so every process answers the same and the numbers agree with
the database by construction."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from django.db import DatabaseError
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

logger = logging.getLogger(__name__)


class DatabaseCollector:
    """The numbers the database holds, read at each scrape in a fixed number of queries
    (`QUERIES`). If the database does not answer, only `veo_database_up 0` is reported."""

    QUERIES = 6

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self._from_database())
        except DatabaseError as exc:
            logger.error("event=metrics_database_unavailable error=%r", exc)
            metrics = []
        up = GaugeMetricFamily("veo_database_up", "1 if the scrape could read the database.")
        up.add_metric([], 1 if metrics else 0)
        yield up
        yield from metrics

    def _from_database(self) -> Iterable[Metric]:
        yield from generation_metrics()
        yield from credit_metrics()
        yield from callback_metrics()
        yield from fal_account_metrics()
        yield from task_queue_metrics()


def generation_metrics() -> Iterator[Metric]:
    from generations.models import Generation
    from generations.states import IN_FLIGHT, Status

    rows = {
        row["status"]: row
        for row in Generation.objects.order_by()
        .values("status")
        .annotate(count=Count("pk"), oldest=Min("created_at"))
    }
    by_status = GaugeMetricFamily(
        "veo_generations",
        "Generations by status (submitting: a submit under way).",
        labels=["status"],
    )
    for status in Status:
        by_status.add_metric([status.value], rows.get(status.value, {}).get("count", 0))
    yield by_status

    at_fal = (Status.QUEUED, Status.RUNNING)
    # In our queue, no job at fal yet: every other status in flight (pending, submitting,
    # and any status of our own queue before them).
    waiting = tuple(status for status in IN_FLIGHT if status not in at_fal)
    now = timezone.now()

    def count(statuses: Iterable[Status]) -> int:
        return sum(rows[s.value]["count"] for s in statuses if s.value in rows)

    def oldest_age(statuses: Iterable[Status]) -> float:
        times = [rows[s.value]["oldest"] for s in statuses if s.value in rows]
        return max((now - min(times)).total_seconds(), 0.0) if times else 0.0

    for name, doc, value in (
        ("veo_generations_waiting", "Accepted, not yet at fal.", count(waiting)),
        ("veo_generations_at_fal", "At fal: queued or running.", count(at_fal)),
        (
            "veo_generation_oldest_in_flight_seconds",
            "Age of the oldest generation not yet final (0: none).",
            oldest_age((*waiting, *at_fal)),
        ),
        (
            "veo_generation_oldest_waiting_seconds",
            "Age of the oldest generation not yet at fal (0: none).",
            oldest_age(waiting),
        ),
    ):
        yield GaugeMetricFamily(name, doc, value=value)


def credit_metrics() -> Iterator[Metric]:
    """held = captured + released + what open holds still reserve (the ledger's rule)."""
    from accounts.models import CreditAccount, LedgerEntry

    Kind = LedgerEntry.Kind
    sums = {
        row["kind"]: row
        for row in LedgerEntry.objects.order_by()
        .filter(kind__in=[Kind.HOLD, Kind.CAPTURE, Kind.RELEASE])
        .values("kind")
        .annotate(amount=Sum("amount"), reserved=Sum("reserved_change"))
    }

    def total(kind: str, field: str) -> int:
        return int(sums.get(kind, {}).get(field) or 0)

    held = total(Kind.HOLD, "reserved")
    captured = -total(Kind.CAPTURE, "amount")
    # A capture frees its whole hold and spends part or all of it; a release spends none.
    released = -(total(Kind.CAPTURE, "reserved") + total(Kind.RELEASE, "reserved")) - captured
    accounts = CreditAccount.objects.aggregate(
        reserved=Coalesce(Sum("reserved"), 0), balance=Coalesce(Sum("balance"), 0)
    )
    yield CounterMetricFamily("veo_credits_held", "Credits ever put on hold.", value=held)
    yield CounterMetricFamily(
        "veo_credits_captured", "Credits ever spent from holds (charged).", value=captured
    )
    yield CounterMetricFamily(
        "veo_credits_released", "Credits ever freed from holds uncharged.", value=released
    )
    yield GaugeMetricFamily(
        "veo_credits_reserved", "Credits on hold now, all accounts.", value=accounts["reserved"]
    )
    yield GaugeMetricFamily(
        "veo_credits_balance", "Credits in all accounts now.", value=accounts["balance"]
    )


def callback_metrics() -> Iterator[Metric]:
    from generations.models import CallbackAttempt

    answered = Q(status_code__isnull=False) | ~Q(error="")  # not an attempt under way
    attempts = CallbackAttempt.objects.aggregate(
        delivered=Count("pk", filter=Q(succeeded=True)),
        failed=Count("pk", filter=Q(succeeded=False) & answered),
    )
    family = CounterMetricFamily(
        "veo_callback_attempts",
        "Finished callback POSTs to integrators by outcome (failed: not a 2xx answer).",
        labels=["outcome"],
    )
    family.add_metric(["delivered"], attempts["delivered"])
    family.add_metric(["failed"], attempts["failed"])
    yield family


def fal_account_metrics() -> Iterator[Metric]:
    from generations.models import FalAccount

    account = (
        FalAccount.objects.filter(pk=1)
        .values("dispatch_paused", "credentials_failing_since")
        .first()
    )
    paused = bool(account and account["dispatch_paused"])
    failing = bool(account and account["credentials_failing_since"])
    yield GaugeMetricFamily(
        "veo_fal_dispatch_paused",
        "1 while submits to fal are paused (fal refuses our account, or staff paused it).",
        value=int(paused),
    )
    yield GaugeMetricFamily(
        "veo_fal_credentials_failing",
        "1 while fal answers 401/403 to our status polls.",
        value=int(failing),
    )


def task_queue_metrics() -> Iterator[Metric]:
    """django-q2's queue: OrmQ rows (ORM broker) or the Redis list's length."""
    from django_q.conf import Conf

    depth = GaugeMetricFamily("veo_task_queue_depth", "Tasks waiting for a worker.")
    leased = GaugeMetricFamily(
        "veo_task_queue_leased", "Tasks a worker took and has not finished (ORM broker)."
    )
    if Conf.ORM:
        from django_q.models import OrmQ

        now = timezone.now()
        rows = OrmQ.objects.using(Conf.ORM).filter(key=Conf.CLUSTER_NAME)
        counts = rows.aggregate(
            waiting=Count("pk", filter=Q(lock__lte=now)), leased=Count("pk", filter=Q(lock__gt=now))
        )
        depth.add_metric([], counts["waiting"])
        leased.add_metric([], counts["leased"])
        yield leased
    else:
        from django_q.brokers import get_broker

        try:
            depth.add_metric([], get_broker().queue_size())
        except Exception as exc:  # the broker is down: say so in the logs, keep the rest
            logger.error("event=metrics_broker_unavailable error=%r", exc)
            return
    yield depth
