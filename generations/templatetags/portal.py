"""Small presentation filters for the portal's templates."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from generations import estimates
from generations.states import Status
from veoproject.languages import grouped

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

register = template.Library()

# What the portal calls each status (`submitting` is internal: shown as pending).
STATUS_LABELS: dict[str, StrOrPromise] = {
    Status.PENDING: pgettext_lazy("video status", "Pending"),
    Status.SUBMITTING: pgettext_lazy("video status", "Pending"),
    Status.WAITING: pgettext_lazy("video status", "Queued"),
    Status.QUEUED: pgettext_lazy("video status", "Queued"),
    Status.RUNNING: pgettext_lazy("video status", "Rendering"),
    Status.SUCCEEDED: pgettext_lazy("video status", "Ready"),
    Status.FAILED: pgettext_lazy("video status", "Failed"),
    Status.CANCELED: pgettext_lazy("video status", "Canceled"),
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
    if minutes:
        return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": seconds}
    return _("%(seconds)d s") % {"seconds": seconds}


@register.filter
def signed(value: int | None) -> str:
    """+1,000 / -320 / 0 (grouped as the active language writes numbers: +1.000 in
    German), written with a real minus sign (U+2212)."""
    if value is None:
        return ""
    if value > 0:
        return f"+{grouped(value)}"
    if value < 0:
        return f"\u2212{grouped(-value)}"
    return "0"


@register.filter
def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status.title()))


@register.filter
def place_in_line(generation) -> int | None:
    """`estimates.place_in_line` with the estimate the view attached."""
    return estimates.place_in_line(generation, getattr(generation, "estimate", None))
