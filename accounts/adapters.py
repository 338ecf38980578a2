"""django-allauth's hooks into our accounts, and the one rule allauth does not know: signup
credits.

Signup credits (`SIGNUP_CREDITS`) go to an address once it is verified (or at signup, when
`ACCOUNT_EMAIL_VERIFICATION` is "none"), and only once per address in any letter case, and
once per user: an address that signs up again after its first account was renamed or
deleted gets nothing, nor does a user who adds and verifies more addresses. The ledger's
idempotency key is derived from the lower-cased address, so the database itself refuses a
second grant for it.

Links in allauth's emails: allauth builds them from the request's Host header. Once the
site has a public address (`PUBLIC_BASE_URL`) every one starts with it instead
(`veoproject.site_urls.for_email`), so a forged Host header cannot turn a password reset
into a link that hands the key to another host; without one they keep the host the
request named, which Django takes only from `ALLOWED_HOSTS` (`veoproject.checks` warns
when that is "*").
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.core.exceptions import ImmediateHttpResponse
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from accounts import ledger, limits
from accounts.models import CreditAccount, LedgerEntry, User
from veoproject import languages, site_urls

logger = logging.getLogger(__name__)

SIGNUP_CREDITS_REASON = "Welcome credits"
# Every signup grant's key starts with this, the ones made before allauth too
# (`signup:<user id>`): one test finds them all.
SIGNUP_KEY_PREFIX = "signup:"


def signup_credits_key(email: str) -> str:
    """The ledger idempotency key of the signup credits of `email`, in any letter case."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"{SIGNUP_KEY_PREFIX}email:{digest}"


def grant_signup_credits(*, user: User, email: str) -> LedgerEntry | None:
    """Grant `SIGNUP_CREDITS` to `user` for `email`, unless this user already had signup
    credits or this address already brought some (to whichever account). Returns the new
    entry, or None when nothing was granted.

    Holds the user's credit account row for the check, so two confirmations of two
    addresses of one user at once grant once; two accounts racing for one address are
    settled by the key's unique constraint (the ledger returns the first entry).
    """
    amount = settings.SIGNUP_CREDITS
    if amount <= 0 or not email:
        return None
    key = signup_credits_key(email)
    with transaction.atomic():
        account = CreditAccount.objects.select_for_update().get(user=user)
        already = LedgerEntry.objects.filter(
            account__user=user, idempotency_key__startswith=SIGNUP_KEY_PREFIX
        ).exists()
        if already or LedgerEntry.objects.filter(idempotency_key=key).exists():
            logger.info("event=signup_credits_skipped user=%s", user.pk)
            return None
        entry = ledger.grant(
            user=user, amount=amount, reason=SIGNUP_CREDITS_REASON, idempotency_key=key
        )
    if entry.account_id != account.pk:  # lost a race for the address to another account
        return None
    logger.info("event=signup_credits_granted user=%s credits=%s", user.pk, amount)
    return entry


def signup_credits_at_signup(*, user: User) -> LedgerEntry | None:
    """The grant due when an account is created: for the signup address when verification
    is off, or for an address already verified (a social provider vouched for it)."""
    if settings.ACCOUNT_EMAIL_VERIFICATION == "none":
        return grant_signup_credits(user=user, email=user.email)
    verified = (
        EmailAddress.objects.filter(user=user, verified=True).order_by("-primary", "pk").first()
    )
    if verified is None:
        return None
    return grant_signup_credits(user=user, email=verified.email)


def signup_credits_on_confirmation(*, email_address: EmailAddress) -> LedgerEntry | None:
    """The grant due when an address is confirmed by its owner."""
    return grant_signup_credits(user=email_address.user, email=email_address.email)


# The context variables in which allauth hands its email templates a link to this site
# (address confirmation, password reset, signup); a test reads allauth's templates and
# ours for any other.
EMAIL_LINKS = ("activate_url", "password_reset_url", "signup_url")


@dataclass(frozen=True)
class EmailSite:
    """The site allauth's emails name (`current_site`; allauth's notifications end with its
    domain), which allauth takes from the Host header without the sites framework."""

    domain: str
    name: str


def _on_public_address(url: str) -> str:
    parts = urlsplit(url)
    return site_urls.for_email(urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment)))


def public_email_context(context: dict[str, Any]) -> dict[str, Any]:
    """The context of an allauth email with its links and the site it names on the public
    address, when the site has one; as allauth made them (from an allowed host) otherwise.
    allauth builds these links in its adapter's hooks and in flows that bypass them (the
    "no account here" email): every one passes through `send_mail`, so it is done there."""
    if not site_urls.is_public():
        return context
    links = {name: _on_public_address(context[name]) for name in EMAIL_LINKS if context.get(name)}
    domain = urlsplit(site_urls.for_email("/")).netloc
    return {**context, **links, "current_site": EmailSite(domain=domain, name=domain)}


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "username_taken": _("That username is taken."),
        "email_taken": _("An account with this email address already exists."),
        "too_many_login_attempts": _("Too many failed logins. Try again later."),
    }

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """A mail server that is down never fails the page that sends (signup, reset,
        resend): the cause is logged for staff, the person is told to try again later.
        Written in the recipient's language, else in the page's; its links and the site it
        names never come from the Host header once the site has a public address."""
        context = public_email_context(context)
        user = context.get("user")
        language = languages.for_recipient(
            user if isinstance(user, User) else None, default=translation.get_language()
        )
        try:
            with translation.override(language):
                super().send_mail(template_prefix, email, context)
        except (smtplib.SMTPException, OSError) as exc:
            logger.error(
                "event=email_failed template=%s error=%r", template_prefix.rsplit("/", 1)[-1], exc
            )
            request = context.get("request") or getattr(self, "request", None)
            if request is not None:
                messages.warning(
                    request,
                    _(
                        "We could not send you an email just now. Please try again in a few "
                        "minutes (on your account's email page, or with “Forgot password”)."
                    ),
                )

    def get_client_ip(self, request: HttpRequest) -> str:
        """Rate limits count clients as django-axes and `accounts.limits` do: one rule
        for `X-Forwarded-For` (`TRUSTED_PROXY_COUNT`), IPv6 by its /64."""
        address = limits.client_address(request)
        if address is None:
            raise PermissionDenied("Unable to determine the client's address.")
        return address

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        """Over allauth's failed-login limit the answer is the lockout page (429), as over
        django-axes's, instead of a form error."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            from accounts.views import locked_out_page  # not at app start (signals load this)

            logger.warning("event=login_limited address=%s", limits.client_address(request))
            raise ImmediateHttpResponse(locked_out_page(request)) from None
