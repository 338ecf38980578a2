"""Small presentation filters for the portal's templates."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from generations.states import Status

register = template.Library()

# What the portal calls each status (`submitting` is internal: shown as pending).
STATUS_LABELS: dict[str, str] = {
    Status.PENDING: "Pending",
    Status.SUBMITTING: "Pending",
    Status.QUEUED: "Queued",
    Status.RUNNING: "Rendering",
    Status.SUCCEEDED: "Ready",
    Status.FAILED: "Failed",
    Status.CANCELED: "Canceled",
}


@register.filter
def elapsed(since: datetime | None) -> str:
    """Time since `since` as m:ss (or h:mm:ss): how long a job has been waiting."""
    if since is None:
        return ""
    seconds = max(0, int((timezone.now() - since).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@register.filter
def duration_between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


@register.filter
def signed(value: int | None) -> str:
    """+1,000 / -320 / 0, written with a real minus sign (U+2212)."""
    if value is None:
        return ""
    if value > 0:
        return f"+{value:,}"
    if value < 0:
        return f"\u2212{-value:,}"
    return "0"


@register.filter
def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.title())
