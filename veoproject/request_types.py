"""Request types for views that only run for a signed-in user, for type annotations.

Django types `request.user` as `User | AnonymousUser`. Behind `login_required`, DRF's
authentication and permissions, or the admin site, it is always a `User`: annotate such a
view's request with these instead of checking again. Where the signature is Django's (an
admin action), `signed_in_user` narrows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from rest_framework.request import Request

if TYPE_CHECKING:
    from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """A portal or admin request of a signed-in user."""

    user: User


class AuthenticatedRequest(Request):
    """An API request that passed authentication (session or token)."""

    user: User


def signed_in_user(request: HttpRequest) -> User:
    """`request.user` of a request only signed-in users reach (the admin site)."""
    user = request.user
    if not user.is_authenticated:
        raise PermissionDenied
    return user
