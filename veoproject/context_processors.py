from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest


def _once(read: Callable[[], Any]) -> Callable[[], Any]:
    """A value read only if a template uses it, and then once per request (templates call
    callables, and may name the value on every card)."""
    return cache(read)


def site(request: HttpRequest) -> dict:
    """What every page shows: the simulated-backend banner, what a failed or canceled video
    costs (`generations.refund_words`), the user's credits, whether
    videos are delayed (dispatch paused: `generations.services.account`) and, for staff,
    our fal account's state for the admin banner."""
    from generations.refund_words import failed_video_cost

    context: dict[str, Any] = {
        "fal_simulated": settings.FAL_SIMULATED,
        # What a failed or canceled video costs, under staff's refund policies.
        "failed_video_cost": _once(failed_video_cost),
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        from accounts.selectors import credit_summary
        from generations.services import account

        context["credits"] = credit_summary(user=user)
        context["dispatch_delayed"] = _once(account.dispatch_paused)
        if user.is_staff:
            context["fal_account"] = _once(account.snapshot)
            context["fal_webhook_user_pinned"] = bool(settings.FAL_WEBHOOK_USER_ID)
    return context
