"""Account pages: signup, credits history, API tokens. Login, logout and passwords are
Django's own views with our templates (see accounts/urls.py), with the abuse limits of
`accounts.limits` in front of them."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import limits, tokens
from accounts.forms import SignupForm, TokenCreateForm
from accounts.models import ApiToken, LedgerEntry
from accounts.services import user_signup
from veoproject.exceptions import ApplicationError, ValidationFailed
from veoproject.form_errors import add_service_errors
from veoproject.request_types import AuthenticatedHttpRequest

logger = logging.getLogger(__name__)

LEDGER_PAGE_SIZE = 25
# The raw token travels from the create POST to the next GET in the session, once.
NEW_TOKEN_SESSION_KEY = "accounts.new_token"
SIGNUP_LIMITED = "Too many signups from your network in the last hour. Try again later."


@never_cache
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not limits.signup_allowed(request):
            form.add_error(None, SIGNUP_LIMITED)
            return _signup_page(request, form, status=429)
        try:
            user = user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
            )
        except ValidationFailed as exc:
            add_service_errors(form, exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            if settings.SIGNUP_CREDITS > 0:
                messages.success(
                    request,
                    f"Welcome, {user.username}! You have {settings.SIGNUP_CREDITS:,} credits "
                    "to start with.",
                )
            else:
                messages.success(request, f"Welcome, {user.username}!")
            return redirect(settings.LOGIN_REDIRECT_URL)
    return _signup_page(request, form)


def _signup_page(request: HttpRequest, form: SignupForm, status: int = 200) -> HttpResponse:
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "signup_credits": settings.SIGNUP_CREDITS},
        status=status,
    )


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset page, except that over the limits of `accounts.limits` no email goes
    out; the answer is the same as when one does, so the limit gives nothing away."""

    def form_valid(self, form):
        if not limits.password_reset_allowed(self.request, form.cleaned_data["email"]):
            return redirect(self.get_success_url())
        return super().form_valid(form)


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
        {"page": page, "entries": page.object_list, "voucher_url": _voucher_url()},
    )


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
            messages.success(request, f"Token “{token.name}” created. Copy it now.")
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
        messages.success(request, f"Token “{token.name}” revoked. It stopped working at once.")
    else:
        messages.info(request, f"Token “{token.name}” was already revoked.")
    return redirect("tokens")


@login_required
@require_POST
def webhook_secret_rotate(request: AuthenticatedHttpRequest) -> HttpResponse:
    tokens.rotate_webhook_secret(user=request.user)
    messages.success(
        request,
        "New webhook secret created. Callbacks are signed with it from now on: "
        "update your receiver.",
    )
    return redirect(reverse("tokens") + "#webhook-secret")
