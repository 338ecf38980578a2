"""A user's time zone: which names are zones, the zone a user's times are shown in, and the
zone a browser detected at signup or login.

`User.time_zone` holds an IANA name from `zoneinfo.available_timezones()`, or "" for the
site's `TIME_ZONE`. Pages show times in the active zone (`accounts.middleware.
TimeZoneMiddleware` activates the user's); emails sent by workers override it with the
recipient's (`notifications.delivery`). The API and the ledger CSV stay in UTC.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from datetime import tzinfo

    from accounts.models import User

# The server's own zone file: a name the browser never sends and that means nothing to the
# user.
NOT_ZONES = frozenset({"localtime"})


@cache
def zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_ZONES


def is_zone(name: str) -> bool:
    return isinstance(name, str) and name in zone_names()


def validate_time_zone(value: str) -> None:
    """The model field's validator: "" (the site's zone) or an IANA zone name."""
    if value and not is_zone(value):
        raise ValidationError(
            _("“%(value)s” is not a time zone we know."), code="invalid", params={"value": value}
        )


# The regions of the zones offered (the tz database's own areas; "Brazil/East" or
# "US/Pacific" are old aliases of zones in them).
REGIONS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)


@cache
def zone_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """The zones a person picks from, grouped by region ("Europe": "Berlin", ...), for a
    <select> with <optgroup>s. Only region/city names and UTC: the old aliases ("CET",
    "Japan", "US/Pacific") stay valid but are not offered."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(zone_names()):
        region, _slash, city = name.partition("/")
        if region not in REGIONS or not city:
            continue
        groups.setdefault(region, []).append((name, city.replace("_", " ").replace("/", " / ")))
    return [("UTC", [("UTC", "UTC")]), *sorted(groups.items())]


@cache
def offered_zone_names() -> frozenset[str]:
    return frozenset(name for _region, group in zone_choices() for name, _city in group)


def zone_named(name: str) -> tzinfo:
    """The zone called `name`, or the site's (TIME_ZONE) for "" or a name we do not know."""
    return ZoneInfo(name) if is_zone(name) else timezone.get_default_timezone()


def zone_of(user: User) -> tzinfo:
    """The zone `user`'s times are shown in."""
    return zone_named(user.time_zone)


def zone_of_user_id(user_id: int) -> tzinfo:
    """The zone of the user `user_id` (for work that holds an id, not a user: emails)."""
    from accounts.models import User

    name = User.objects.filter(pk=user_id).values_list("time_zone", flat=True).first()
    return zone_named(name or "")


def detected_zone(value: object) -> str:
    """A zone name a browser sent, if it is one; "" for anything else (missing, too long,
    made up). Detection is a convenience: a bad value is dropped, never an error."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    return value if is_zone(value) else ""


def remember_detected_zone(*, user: User, name: str) -> bool:
    """Store the zone a browser detected at signup or login, unless the user has one
    already: a choice made on the settings page (or an earlier detection) is never
    overwritten. A conditional UPDATE, so two logins at once store one zone. Returns
    whether it was stored."""
    from accounts.models import User

    name = detected_zone(name)
    if not name or user.pk is None:
        return False
    stored = User.objects.filter(pk=user.pk, time_zone="").update(time_zone=name) == 1
    if stored:
        user.time_zone = name
    return stored
