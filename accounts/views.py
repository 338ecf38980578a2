"""Account pages: credits history, API tokens, and the answers of the abuse limits.
Signup, login, logout, passwords and email verification are django-allauth's views with our
templates (templates/account/) and our rules (accounts.adapters, accounts.forms)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django.views.generic import RedirectView

from accounts import ledger, ledger_export, limits, selectors, time_zones, tokens
from accounts.forms import AccountSettingsForm, TokenCreateForm
from accounts.models import ApiToken, LedgerEntry
from accounts.payments import selectors as payment_selectors
from veoproject.exceptions import ApplicationError
from veoproject.form_errors import add_service_errors
from veoproject.request_types import AuthenticatedHttpRequest

logger = logging.getLogger(__name__)

LEDGER_PAGE_SIZE = 25
# The raw token travels from the create POST to the next GET in the session, once.
NEW_TOKEN_SESSION_KEY = "accounts.new_token"


# What a rate-limited request was trying to do, by the name of the page it was sent to.
RATE_LIMITED = {
    "account_signup": (
        "signup",
        gettext_lazy("Too many signups from your network in the last hour."),
    ),
    "account_login": ("login", gettext_lazy("Too many login attempts from your network.")),
    "account_reset_password": ("password_reset", gettext_lazy("Too many password reset requests.")),
    "account_reset_password_from_key": (
        "password_reset",
        gettext_lazy("Too many attempts to use password reset links."),
    ),
    "account_email": (
        "email_confirmation",
        gettext_lazy("Too many confirmation emails asked for."),
    ),
    "account_email_verification_sent": (
        "email_confirmation",
        gettext_lazy("Too many confirmation emails asked for."),
    ),
}


def legacy_redirect(url_name: str):
    """A view that sends an old account URL (before allauth) to its new page, keeping the
    query string (`?next=`). Links in old emails and bookmarks keep working."""
    return RedirectView.as_view(pattern_name=url_name, query_string=True, permanent=False)


def rate_limited(request: HttpRequest) -> HttpResponse:
    """The answer (429) to a request over one of allauth's rate limits (ACCOUNT_RATE_LIMITS),
    as `handler429`."""
    match = getattr(request, "resolver_match", None)
    name = match.url_name if match is not None else ""
    action, message = RATE_LIMITED.get(name or "", ("request", gettext_lazy("Too many requests.")))
    logger.warning(
        "event=%s_limited path=%s address=%s", action, request.path, limits.client_address(request)
    )
    return render(request, "account/rate_limited.html", {"message": message}, status=429)


def login_locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """The answer to a login attempt (portal or admin) while the account or the address is
    locked out by django-axes (`AXES_LOCKOUT_CALLABLE`), in place of the login page."""
    logger.warning(
        "event=login_locked_out path=%s address=%s",
        request.path,
        getattr(request, "axes_ip_address", None),
    )
    return locked_out_page(request)


def locked_out_page(request: HttpRequest) -> HttpResponse:
    """The lockout page (429), for django-axes's lockout and for allauth's count of failed
    logins alike (accounts.adapters.AccountAdapter.pre_authenticate)."""
    return render(
        request,
        "registration/locked_out.html",
        {"minutes": limits.lockout_minutes(), "login_url": request.path},
        status=429,
    )


def _voucher_url() -> str | None:
    try:
        return reverse("voucher-redeem")
    except NoReverseMatch:
        return None


@login_required
def account_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The account page: time zone and language, and links to the other settings. A new
    language also becomes the session's at once (veoproject.languages sets its cookie
    from User.language, as Django's set_language would); "the browser's" drops the
    cookie, so that Accept-Language decides again."""
    form = AccountSettingsForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        if user.language:
            translation.activate(user.language)
        messages.success(request, _("Your settings are saved."))
        response = redirect("account-settings")
        if not user.language and "language" in form.changed_data:
            response.delete_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                path=settings.LANGUAGE_COOKIE_PATH,
                domain=settings.LANGUAGE_COOKIE_DOMAIN,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            )
        return response
    return render(request, "accounts/settings.html", {"form": form, "now": timezone.now()})


@login_required
def credits(request: AuthenticatedHttpRequest) -> HttpResponse:
    entries = (
        LedgerEntry.objects.filter(account__user=request.user)
        .select_related("generation")
        .order_by("-created_at", "-id")
    )
    page = Paginator(entries, LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "accounts/credits.html",
        {
            "page": page,
            "entries": page.object_list,
            "voucher_url": _voucher_url(),
            "payments_enabled": payment_selectors.payments_enabled(),
            "packs": payment_selectors.offered_packs(),
            "receipts": payment_selectors.receipts(user=request.user),
            "credits_owed": ledger.credits_owed(user=request.user),
            "spending": selectors.spent_per_day(
                user=request.user, tz=time_zones.zone_of(request.user)
            ),
        },
    )


@login_required
def ledger_csv(request: AuthenticatedHttpRequest) -> StreamingHttpResponse:
    """All of the user's ledger as a CSV download (accounts.ledger_export)."""
    return ledger_export.csv_response(user=request.user)


@login_required
@never_cache
def token_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = tokens.create_token(
                user=request.user, name=form.cleaned_data["name"], expires_at=form.expires_at()
            )
        except ApplicationError as exc:
            add_service_errors(form, exc, aliases={"expires_at": "expires_in_days"})
        else:
            request.session[NEW_TOKEN_SESSION_KEY] = {"id": token.pk, "raw": raw}
            messages.success(
                request, _("Token “%(name)s” created. Copy it now.") % {"name": token.name}
            )
            return redirect("tokens")
    new_token = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    token_rows = ApiToken.objects.filter(user=request.user).order_by("-created_at", "-id")
    return render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "tokens": token_rows,
            "new_token": new_token,
            "api_docs_url": reverse("api-docs"),
        },
    )


@login_required
@require_POST
def token_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if token.revoked_at is None:
        tokens.revoke_token(token=token)
        messages.success(
            request,
            _("Token “%(name)s” revoked. It stopped working at once.") % {"name": token.name},
        )
    else:
        messages.info(request, _("Token “%(name)s” was already revoked.") % {"name": token.name})
    return redirect("tokens")


@login_required
@require_POST
def webhook_secret_rotate(request: AuthenticatedHttpRequest) -> HttpResponse:
    tokens.rotate_webhook_secret(user=request.user)
    messages.success(
        request,
        _(
            "New webhook secret created. Callbacks are signed with it from now on: "
            "update your receiver."
        ),
    )
    return redirect(reverse("tokens") + "#webhook-secret")
