"""Per-user request rates, one setting each (`API_CREATE_RATE`, `API_READ_RATE`,
`VOUCHER_REDEEM_RATE`; `0` or empty lifts a limit).

The rate is read from settings on every request, not frozen at import like DRF's
`THROTTLE_RATES`, so an operator (or a test's `settings` fixture) changes it without code.
Credits and the in-flight cap are business rules in `generations.services`, not throttles.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import UserRateThrottle

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")


def effective_rate(raw: str | None, setting: str) -> str | None:
    """The rate DRF understands (``"30/min"``), or None for no limit (`0` or empty);
    ImproperlyConfigured, naming `setting`, for anything else."""
    if raw is None or not str(raw).strip() or str(raw).strip() == "0":
        return None
    match = _RATE_RE.match(str(raw))
    if match is None:
        raise ImproperlyConfigured(f"{setting}={raw!r}: use e.g. '30/min', '1000/hour' or '0'.")
    if int(match[1]) == 0:
        return None
    return f"{int(match[1])}/{match[2]}"


class SettingRateThrottle(UserRateThrottle):
    """A per-user throttle whose rate is the setting named by `setting`."""

    setting: str

    def get_rate(self) -> str | None:
        return effective_rate(getattr(settings, self.setting, None), self.setting)


class GenerationCreateThrottle(SettingRateThrottle):
    """Creating generations: `API_CREATE_RATE` per user (default 30/min)."""

    scope = "generation_create"
    setting = "API_CREATE_RATE"


class ApiReadThrottle(SettingRateThrottle):
    """Every other API call: `API_READ_RATE` per user (default 600/min)."""

    scope = "api_read"
    setting = "API_READ_RATE"


class VoucherRedeemThrottle(SettingRateThrottle):
    """Voucher redemption attempts: `VOUCHER_REDEEM_RATE` per user (default 10/hour),
    shared by the API and the portal page, so codes cannot be guessed by brute force."""

    scope = "voucher_redeem"
    setting = "VOUCHER_REDEEM_RATE"
