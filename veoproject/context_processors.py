from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict:
    """What every page shows: the simulated-backend banner and the user's credits."""
    context = {"fal_simulated": settings.FAL_SIMULATED}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        from accounts.selectors import credit_summary

        context["credits"] = credit_summary(user=user)
    return context
