"""Dates and times as a person reads them: in the active time zone (the user's, see
`accounts.time_zones`) and language, with the zone named.

    {% load local_time %}
    {{ generation.created_at|local_time }}            3 Dec 2026, 09:14 CET, in a <time>
    {{ generation.created_at|local_time:"seconds" }}  3 Dec 2026, 09:14:05 CET
    {{ entry.created_at|local_time:"short" }}         3 Dec, 09:14 CET
    {{ token.expires_at|local_time:"date" }}          3 Dec 2026 (the full time in its title)
    {{ token.last_used_at|local_time:"relative" }}    5 minutes ago (the same)
    {{ purchase.paid_at|local_time_text }}            the words alone (plain-text emails)

The `datetime` attribute is ISO 8601 with the zone's offset. The API and the ledger CSV do
not use this: they stay in UTC.
"""

from __future__ import annotations

from datetime import date, datetime

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import pgettext_lazy

register = template.Library()

# Formats of Django's `date` filter, translatable so each language orders them its way.
FORMATS = {
    "datetime": pgettext_lazy("date and time format (Django date filter)", "j M Y, H:i"),
    "seconds": pgettext_lazy(
        "date and time with seconds format (Django date filter)", "j M Y, H:i:s"
    ),
    "short": pgettext_lazy("day, month and time format (Django date filter)", "j M, H:i"),
    "date": pgettext_lazy("date format (Django date filter)", "j M Y"),
}
# Styles that show the date (or the time since) only, with the full time in a title.
BRIEF_STYLES = {"date", "relative"}


def zone_name(value: datetime) -> str:
    """The zone's abbreviation (CET, JST), or its offset (+04) where it has none."""
    return value.tzname() or dateformat.format(value, "O")


def in_words(value: datetime, style: str = "datetime") -> str:
    """`value` in the active zone and language, in `style` (see FORMATS), zone named."""
    fmt = FORMATS.get(style, FORMATS["datetime"])
    return f"{dateformat.format(value, str(fmt))} {zone_name(value)}"


def _local(value: datetime) -> datetime:
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return timezone.localtime(value)


@register.filter(is_safe=True)
def local_time(value: datetime | date | None, style: str = "datetime") -> SafeString | str:
    """A <time> element for `value` (see the module's docstring for the styles)."""
    if not isinstance(value, date):
        return ""
    if not isinstance(value, datetime):  # a calendar day: no zone to convert it from
        return format_html(
            '<time datetime="{}">{}</time>',
            value.isoformat(),
            dateformat.format(value, str(FORMATS["date"])),
        )
    local = _local(value)
    full = in_words(local, "seconds" if style == "seconds" else "datetime")
    if style == "relative":
        text = naturaltime(value)
    elif style == "date":
        text = dateformat.format(local, str(FORMATS["date"]))
    else:
        text = in_words(local, style)
    if style in BRIEF_STYLES:
        return format_html(
            '<time datetime="{}" title="{}">{}</time>', local.isoformat(), full, text
        )
    return format_html('<time datetime="{}">{}</time>', local.isoformat(), text)


@register.filter
def local_time_text(value: datetime | None, style: str = "datetime") -> str:
    """`value` in words without markup, for plain-text emails and titles."""
    if not isinstance(value, datetime):
        return ""
    return in_words(_local(value), style)
