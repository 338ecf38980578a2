"""Two-factor for staff before the admin opens.

- A staff user who has set up TOTP must have used it in this session to open the admin:
  the admin's own login form asks for a password only, so a session that came in through
  it is sent to confirm a code first (allauth.mfa's reauthentication page).
- With `STAFF_REQUIRE_MFA` on, a staff user without TOTP is sent to set it up first.

The admin is gated, and so is every other place where staff see what is not theirs
(`staff_session_trusted`, e.g. other users' media): the portal otherwise stays open to
staff as to anyone. Logging out of the admin is never gated.

And `TimeZoneMiddleware`: each request runs in its user's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from allauth.account.internal.flows.login import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy
from rest_framework.views import APIView

from accounts import time_zones

SET_UP_FIRST = gettext_lazy(
    "Set up two-factor authentication to use the admin: staff accounts need it."
)
CONFIRM_FIRST = gettext_lazy("Enter a code from your authenticator app to open the admin.")


def has_totp(user) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def used_mfa_in_session(request: HttpRequest, user) -> bool:
    """Whether this session passed a TOTP (or recovery code) check, at login or since:
    allauth keeps a record of each authentication of the session."""
    records = get_authentication_records(request, user)
    return any(record.get("method") == "mfa" for record in records)


def staff_session_trusted(request: HttpRequest, user) -> bool:
    """Whether this session may use staff privileges: it passed the code check if the user
    has TOTP, and TOTP is set up if STAFF_REQUIRE_MFA says so. The one rule the admin's
    gate and other staff-only access (media) both ask."""
    if has_totp(user):
        return used_mfa_in_session(request, user)
    return not settings.STAFF_REQUIRE_MFA


class StaffMFAMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.gate(request) or self.get_response(request)

    def gate(self, request: HttpRequest) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return None
        if not request.path.startswith(reverse("admin:index")):
            return None
        if request.path == reverse("admin:logout"):
            return None
        if has_totp(user):
            if used_mfa_in_session(request, user):
                return None
            messages.info(request, CONFIRM_FIRST)
            return _redirect("mfa_reauthenticate", request.get_full_path())
        if settings.STAFF_REQUIRE_MFA:
            messages.warning(request, SET_UP_FIRST)
            return _redirect("mfa_activate_totp", request.get_full_path())
        return None


def _redirect(url_name: str, next_url: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{reverse(url_name)}?{urlencode({'next': next_url})}")


class TimeZoneMiddleware:
    """Times on a page are shown in the user's zone (`accounts.time_zones`), the site's
    TIME_ZONE for anonymous visitors. The API keeps answering in UTC whoever asks, so a
    DRF view runs with the default zone; so does the next request on this thread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            timezone.activate(time_zones.zone_of(user))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        view_class = getattr(view_func, "cls", None)  # set by DRF's APIView.as_view
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            timezone.deactivate()
