"""A user's email switches: read with their defaults, changed, and switched off from an
unsubscribe link."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from django.db import transaction
from django.utils.translation import gettext, gettext_lazy

from accounts.models import User
from generations import pricing
from generations.pricing import Rates
from generations.requests import DEFAULTS
from notifications.models import NotificationPreference
from veoproject import languages
from veoproject.exceptions import PricingError, ValidationFailed

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# The notification kinds a user can switch off (receipts are not optional).
Topic = Literal["video", "low_balance"]
TOPICS: Final[dict[str, StrOrPromise]] = {
    "video": gettext_lazy("video emails (ready or failed)"),
    "low_balance": gettext_lazy("low-balance emails"),
}
THRESHOLD_MAX = 10_000_000


def default_low_balance_threshold(*, rates: Rates | None = None) -> int:
    """The price of one video with the request's default options (0, no default
    threshold, if that video has no active price). One query without `rates`."""
    try:
        return pricing.quote(
            duration=DEFAULTS["duration"],
            resolution=DEFAULTS["resolution"],
            generate_audio=DEFAULTS["generate_audio"],
            rates=rates,
        ).credits
    except PricingError:
        return 0


def preferences_for(user: User) -> NotificationPreference:
    """The user's preferences; an unsaved row with the defaults if they never changed any."""
    found = NotificationPreference.objects.filter(user=user).first()
    return found if found is not None else NotificationPreference(user=user)


def threshold_for(preference: NotificationPreference, *, rates: Rates | None = None) -> int:
    if preference.low_balance_threshold is not None:
        return preference.low_balance_threshold
    return default_low_balance_threshold(rates=rates)


def update_preferences(
    *,
    user: User,
    video_emails: bool,
    low_balance_emails: bool,
    low_balance_threshold: int | None,
) -> NotificationPreference:
    """Save the switches; `low_balance_threshold=None` follows the default price."""
    if low_balance_threshold is not None and not 0 <= low_balance_threshold <= THRESHOLD_MAX:
        raise ValidationFailed(
            fields={
                "low_balance_threshold": [
                    gettext("Choose a number from 0 to %(max)s.")
                    % {"max": languages.grouped(THRESHOLD_MAX)}
                ],
            }
        )
    preference, _ = NotificationPreference.objects.update_or_create(
        user=user,
        defaults={
            "video_emails": video_emails,
            "low_balance_emails": low_balance_emails,
            "low_balance_threshold": low_balance_threshold,
        },
    )
    return preference


def switch_off(*, user_id: int, topic: Topic) -> None:
    """Stop one kind of email (an unsubscribe link); idempotent."""
    field = {"video": "video_emails", "low_balance": "low_balance_emails"}[topic]
    with transaction.atomic():
        preference, _ = NotificationPreference.objects.get_or_create(user_id=user_id)
        if getattr(preference, field):
            setattr(preference, field, False)
            preference.save(update_fields=[field, "updated_at"])
