"""The one retry backoff, with each caller's numbers."""

from __future__ import annotations

from datetime import timedelta

from generations.callbacks import delivery
from veoproject.backoff import backoff


def test_backoff_doubles_from_the_first_wait_up_to_the_cap():
    waits = [backoff(n, first=2, cap=120).total_seconds() for n in range(1, 10)]
    assert waits == [2, 4, 8, 16, 32, 64, 120, 120, 120]


def test_attempt_zero_waits_the_first_wait():
    assert backoff(0, first=5, cap=120) == timedelta(seconds=5)


def test_an_absurd_attempt_count_stays_at_the_cap():
    assert backoff(10**9, first=30, cap=3600) == timedelta(hours=1)


def test_callback_retries_start_at_30_seconds_before_attempt_2():
    assert [delivery.retry_delay(n) for n in (2, 3, 4)] == [30, 60, 120]
    assert delivery.retry_delay(50) == delivery.MAX_RETRY_SECONDS
