"""The email settings page and the one-click unsubscribe link."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.models import User
from notifications import preferences
from notifications.forms import NotificationSettingsForm
from notifications.preferences import TOPICS
from notifications.unsubscribe import BadToken, read_token
from veoproject.exceptions import ValidationFailed
from veoproject.form_errors import add_service_errors
from veoproject.request_types import AuthenticatedHttpRequest


@login_required
@never_cache
def notification_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    current = preferences.preferences_for(request.user)
    default_threshold = preferences.default_low_balance_threshold()
    form = NotificationSettingsForm(
        request.POST or None,
        default_threshold=default_threshold,
        initial={
            "video_emails": current.video_emails,
            "low_balance_emails": current.low_balance_emails,
            "low_balance_threshold": current.low_balance_threshold,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            preferences.update_preferences(user=request.user, **form.cleaned_data)
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Email settings saved."))
            return redirect("notification-settings")
    return render(
        request,
        "notifications/notification_settings.html",
        {"form": form, "email": request.user.email, "threshold": default_threshold},
    )


# The token is the authority, not a session: the link works logged out, and mail clients
# send RFC 8058 one-click POSTs ("List-Unsubscribe=One-Click") without cookies or a CSRF
# token. A forged request can only switch off the emails of a token it already holds.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = read_token(token)
    except BadToken:
        return _refused(request)
    user = User.objects.filter(pk=link.user_id).first()
    if user is None:
        return _refused(request)
    context = {"what": TOPICS[link.topic], "email": user.email, "token": token}
    if request.method == "POST":
        preferences.switch_off(user_id=user.pk, topic=link.topic)
        return render(request, "notifications/unsubscribe_done.html", context)
    return render(request, "notifications/unsubscribe_confirm.html", context)


def _refused(request: HttpRequest) -> HttpResponse:
    return render(request, "notifications/unsubscribe_invalid.html", status=400)
