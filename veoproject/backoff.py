"""How long to wait before trying again: one doubling rule for every retry we schedule
(submits to fal, video copies, callback deliveries and their deferrals), each caller
with its own first wait and ceiling."""

from __future__ import annotations

from datetime import timedelta

# Far past any ceiling a caller uses; keeps 2**n a small number for absurd attempt counts.
_MAX_DOUBLINGS = 32


def backoff(attempt: int, *, first: float, cap: float) -> timedelta:
    """`first` before the retry after attempt 1, doubling with each further attempt, never
    more than `cap` (seconds)."""
    doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
    return timedelta(seconds=min(cap, first * 2**doublings))
