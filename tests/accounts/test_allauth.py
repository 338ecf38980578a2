"""Accounts on django-allauth: signup credits only for a verified address and once per
address, the verification setting, the old URLs, allauth's rate limits, social login
buttons, staff two-factor and seed_demo's verified users."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse

from accounts.adapters import grant_signup_credits, signup_credits_key
from accounts.models import CreditAccount, LedgerEntry, User
from tests.factories import UserFactory
from tests.processes import run_python
from tests.races import race

pytestmark = pytest.mark.django_db

PASSWORD = "a quiet lighthouse 42"


def signup(client, username="ada", email="ada@example.com", **extra):
    data = {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD}
    return client.post(reverse("signup"), data, **extra)


def confirmation_path(message) -> str:
    match = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^/\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def confirm(client, message):
    path = confirmation_path(message)
    assert client.get(path).status_code == 200  # a page with a button: a GET confirms nothing
    return client.post(path, follow=True)


def signup_grants(user: User) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(account__user=user, kind="grant"))


def balance(user: User) -> int:
    return CreditAccount.objects.get(user=user).balance


@pytest.fixture(autouse=True)
def _signup_credits(settings):
    settings.SIGNUP_CREDITS = 500
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


# --- Signup credits follow the verified address --------------------------------------------


def test_signup_grants_nothing_until_the_address_is_confirmed_then_once(client):
    response = signup(client)
    assert response.url == reverse("account_email_verification_sent")
    user = User.objects.get(username="ada")
    assert balance(user) == 0 and signup_grants(user) == []
    (message,) = mail.outbox
    assert message.to == ["ada@example.com"]
    assert message.subject == "Confirm your email address for Veo Studio"

    # Merely opening the link changes nothing.
    assert client.get(confirmation_path(message)).status_code == 200
    assert balance(user) == 0

    page = confirm(client, message)
    assert EmailAddress.objects.get(user=user).verified
    (entry,) = signup_grants(user)
    assert (entry.amount, entry.idempotency_key) == (500, signup_credits_key("ada@example.com"))
    assert balance(user) == 500
    assert page.context["user"] == user  # logged in by the confirmation
    assert "You have 500 credits to start with." in page.content.decode()

    # The link again, or a second confirmation: still one grant.
    client.post(confirmation_path(message))
    assert len(signup_grants(user)) == 1 and balance(user) == 500


def test_an_unconfirmed_account_cannot_log_in_and_gets_no_credits(client):
    signup(client)
    client.logout()
    response = client.post(reverse("login"), {"login": "ada", "password": PASSWORD})
    assert response.url == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session
    assert balance(User.objects.get(username="ada")) == 0


def test_an_address_signs_up_again_in_other_case_after_a_rename_and_gets_nothing(client):
    signup(client)
    confirm(client, mail.outbox[-1])
    first = User.objects.get(username="ada")
    assert balance(first) == 500

    # The first account moves to another address, freeing this one ...
    EmailAddress.objects.filter(user=first).update(email="ada@elsewhere.example")
    User.objects.filter(pk=first.pk).update(email="ada@elsewhere.example")
    client.logout()
    cache.clear()  # later: past the pause between two confirmation emails to one address
    # ... which signs up again, spelled differently, and confirms.
    response = signup(client, username="ada2", email="ADA@Example.COM")
    assert response.url == reverse("account_email_verification_sent")
    second = User.objects.get(username="ada2")
    confirm(client, mail.outbox[-1])
    assert EmailAddress.objects.get(user=second).verified

    assert balance(second) == 0 and signup_grants(second) == []
    assert LedgerEntry.objects.filter(kind="grant").count() == 1


def test_signup_with_an_address_in_use_in_other_case_creates_no_account(client):
    signup(client)
    client.logout()
    response = signup(client, username="ada2", email="ADA@EXAMPLE.com")
    assert response.url == reverse("account_email_verification_sent")  # the same answer
    assert not User.objects.filter(username="ada2").exists()
    assert LedgerEntry.objects.filter(kind="grant").count() == 0


def test_more_verified_addresses_bring_no_more_credits(client):
    signup(client)
    confirm(client, mail.outbox[-1])
    user = User.objects.get(username="ada")
    mail.outbox.clear()

    client.post(reverse("account_email"), {"action_add": "", "email": "ada.second@example.com"})
    (message,) = mail.outbox
    confirm(client, message)

    assert EmailAddress.objects.get(email="ada.second@example.com").verified
    assert len(signup_grants(user)) == 1 and balance(user) == 500


def test_users_who_had_signup_credits_before_allauth_get_none_again(client):
    """An account from before the move had its credits under `signup:<id>`; confirming
    its address now (allauth asks at the next login) brings nothing more."""
    from accounts import ledger

    old = UserFactory(username="old", email="old@example.com")
    ledger.grant(user=old, amount=500, reason="Welcome credits", idempotency_key=f"signup:{old.pk}")
    response = client.post(reverse("login"), {"login": "old", "password": "correct horse battery"})
    assert response.url == reverse("account_email_verification_sent")
    confirm(client, mail.outbox[-1])
    assert len(signup_grants(old)) == 1 and balance(old) == 500


def test_with_verification_off_credits_come_at_signup_once_per_address(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "none"
    response = signup(client, follow=True)
    user = User.objects.get(username="ada")
    assert response.redirect_chain[-1][0] == reverse("studio")
    assert response.context["user"] == user
    assert mail.outbox == []
    assert balance(user) == 500
    assert "You have 500 credits to start with." in response.content.decode()

    User.objects.filter(pk=user.pk).update(email="ada@elsewhere.example")
    EmailAddress.objects.filter(user=user).update(email="ada@elsewhere.example")
    client.logout()
    signup(client, username="ada2", email="Ada@Example.com")
    second = User.objects.get(username="ada2")
    assert balance(second) == 0
    assert LedgerEntry.objects.filter(kind="grant").count() == 1


def test_with_verification_optional_login_is_at_once_and_credits_after_confirming(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    response = signup(client)
    user = User.objects.get(username="ada")
    assert response.url == reverse("studio")
    assert client.session["_auth_user_id"] == str(user.pk)
    assert balance(user) == 0
    confirm(client, mail.outbox[-1])
    assert balance(user) == 500


def test_the_verification_setting_comes_from_the_environment_and_is_checked():
    def load(**env: str) -> subprocess.CompletedProcess:
        code = "import django; django.setup(); from django.conf import settings as s; "
        code += "print(s.ACCOUNT_EMAIL_VERIFICATION, sorted(s.SOCIALACCOUNT_PROVIDERS))"
        return run_python(code, drop=["ACCOUNT_EMAIL_VERIFICATION"], **env)

    assert load().stdout.split()[0] == "mandatory"
    assert load(ACCOUNT_EMAIL_VERIFICATION="none").stdout.split()[0] == "none"
    refused = load(ACCOUNT_EMAIL_VERIFICATION="sometimes")
    assert refused.returncode != 0 and "mandatory, optional or none" in refused.stderr
    # Social providers: only those whose id and secret are both given.
    configured = load(
        GOOGLE_CLIENT_ID="gid", GOOGLE_CLIENT_SECRET="gsecret", GITHUB_CLIENT_ID="only-id"
    )
    assert configured.stdout.strip().endswith("['google']"), configured.stderr


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_racing_confirmations_grant_once_per_user_and_once_per_address():
    user = UserFactory(username="lin")
    emails = [f"lin{i}@example.com" for i in range(8)]
    # Eight addresses of one user confirmed at the same instant: one grant.
    results = race(8, lambda i: grant_signup_credits(user=user, email=emails[i]))
    assert all(outcome == "ok" for outcome, _ in results), results
    assert sum(entry is not None for _, entry in results) == 1
    assert balance(user) == 500

    # Eight accounts confirming one address (in different letter cases) at once: one grant.
    others = [UserFactory() for _ in range(8)]
    spellings = ["shared@example.com", "Shared@Example.com", "SHARED@EXAMPLE.COM"]
    results = race(
        8, lambda i: grant_signup_credits(user=others[i], email=spellings[i % len(spellings)])
    )
    assert all(outcome == "ok" for outcome, _ in results), results
    assert sum(entry is not None for _, entry in results) == 1
    assert sum(balance(other) for other in others) == 500
    assert LedgerEntry.objects.filter(kind="grant").count() == 2


# --- Old URLs, names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("/login/?next=/credits/", "/accounts/login/?next=/credits/"),
        ("/signup/", "/accounts/signup/"),
        ("/logout/", "/accounts/logout/"),
        ("/password-reset/", "/accounts/password/reset/"),
        ("/account/password/", "/accounts/password/change/"),
    ],
)
def test_old_account_urls_redirect_to_the_new_pages(client, old, new):
    response = client.get(old)
    assert response.status_code == 302 and response.url == new


def test_old_url_names_and_login_url_reach_working_pages(client):
    for name in ("login", "signup", "password_reset"):
        assert client.get(reverse(name)).status_code == 200, name
    response = client.get(reverse("credits"))
    assert response.url == f"{reverse('login')}?next={reverse('credits')}"
    assert reverse("login") == "/accounts/login/"


# --- Rate limits ----------------------------------------------------------------------------


def test_over_the_reset_limit_the_answer_is_a_429_page(client, settings, caplog):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "reset_password": "2/h/ip"}
    for _ in range(2):
        response = client.post(reverse("password_reset"), {"email": "x@example.com"})
        assert response.status_code == 302
    response = client.post(reverse("password_reset"), {"email": "x@example.com"})
    assert response.status_code == 429
    assert "Too many password reset requests." in response.content.decode()
    assert "event=password_reset_limited" in caplog.text


def test_over_allauths_failed_login_limit_the_answer_is_the_lockout_page(client, settings):
    # Below django-axes's own limit (5), so this is allauth's count answering.
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "2/m/key"}
    verified = UserFactory(username="lin")
    EmailAddress.objects.create(user=verified, email=verified.email, verified=True, primary=True)
    for attempt in range(2):
        response = client.post(reverse("login"), {"login": "lin", "password": f"guess {attempt}"})
        assert response.status_code == 200
    response = client.post(reverse("login"), {"login": "LIN", "password": "guess 3"})
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_over_the_signup_limit_the_answer_is_a_429_page_and_no_account(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "1/h/ip"}
    signup(client)
    client.logout()
    response = signup(client, username="grace", email="grace@example.com")
    assert response.status_code == 429
    assert "Too many signups from your network" in response.content.decode()
    assert not User.objects.filter(username="grace").exists()


def test_a_new_confirmation_email_at_most_every_three_minutes(client):
    signup(client)
    for _ in range(3):
        client.post(reverse("login"), {"login": "ada", "password": PASSWORD})
    assert len(mail.outbox) == 1  # the signup's; logins within the pause send no more


# --- Social login ---------------------------------------------------------------------------


def test_social_login_buttons_only_for_configured_providers(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    for name in ("login", "signup"):
        assert 'data-testid="social-login"' not in client.get(reverse(name)).content.decode()

    settings.SOCIALACCOUNT_PROVIDERS = {
        "github": {"APPS": [{"client_id": "id", "secret": "secret", "key": ""}]}
    }
    for name in ("login", "signup"):
        page = client.get(reverse(name)).content.decode()
        assert 'data-testid="social-login"' in page
        assert 'action="/accounts/github/login/?process=login"' in page
        assert 'data-provider="github"' in page and 'data-provider="google"' not in page


# --- Staff two-factor -----------------------------------------------------------------------


def totp_code(secret: str) -> str:
    counters = list(yield_hotp_counters_from_time())  # the current period in the middle
    return format_hotp_value(hotp_value(secret, counters[len(counters) // 2]))


def test_staff_without_totp_are_sent_to_set_it_up_when_required(client, settings, staff_user):
    client.force_login(staff_user)
    settings.STAFF_REQUIRE_MFA = False
    assert client.get(reverse("admin:index")).status_code == 200

    settings.STAFF_REQUIRE_MFA = True
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response.url == reverse("mfa_activate_totp") + "?next=%2Fadmin%2F"
    # The setup page opens (after the password again: setting up a factor is sensitive).
    assert client.get(response.url, follow=True).status_code == 200
    # The portal stays open; logging out of the admin is never gated.
    assert client.get(reverse("studio")).status_code == 200
    assert client.post(reverse("admin:logout")).url == reverse("login")
    assert "_auth_user_id" not in client.session


def test_staff_with_totp_must_use_it_before_the_admin_opens(client, settings, staff_user):
    settings.STAFF_REQUIRE_MFA = True
    secret = generate_totp_secret()
    TOTP.activate(staff_user, secret)
    # The admin's own login form asks for the password only ...
    response = client.post(
        reverse("admin:login"),
        {"username": staff_user.username, "password": "correct horse battery"},
    )
    assert response.status_code == 302
    response = client.get(reverse("admin:index"))
    assert response.url == reverse("mfa_reauthenticate") + "?next=%2Fadmin%2F"

    # ... so the code is asked for before the admin opens.
    response = client.post(
        reverse("mfa_reauthenticate"), {"code": totp_code(secret), "next": "/admin/"}
    )
    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get(reverse("admin:index")).status_code == 200
    assert Authenticator.objects.filter(user=staff_user).count() == 1


def test_a_totp_user_logging_in_on_the_portal_is_asked_for_a_code(client):
    user = UserFactory(username="lin")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    response = client.post(reverse("login"), {"login": "lin", "password": "correct horse battery"})
    assert response.url == reverse("mfa_authenticate")
    assert "_auth_user_id" not in client.session
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.url == reverse("studio")
    assert client.session["_auth_user_id"] == str(user.pk)


# --- seed_demo ------------------------------------------------------------------------------


def test_seed_demo_users_are_verified_and_log_in_through_the_form(client, settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115 (idempotent)
    for username in ("admin", "demo"):
        address = EmailAddress.objects.get(user__username=username)
        assert address.verified and address.primary
    response = client.post(reverse("login"), {"login": "demo", "password": "demo"})
    assert response.url == reverse("studio")


# --- Content-Security-Policy ----------------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def test_allauth_pages_carry_no_inline_script(client, user):
    anonymous = ["login", "signup", "password_reset", "account_reset_password_done"]
    for name in anonymous:
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        assert "script-src" in response["Content-Security-Policy"]
        assert not INLINE_SCRIPT.findall(response.content.decode()), name
    client.force_login(user)
    for url in (
        reverse("account_email"),
        reverse("mfa_index"),
        reverse("password_change"),
        reverse("logout"),
    ):
        response = client.get(url, follow=True)
        assert response.status_code == 200, url
        assert not INLINE_SCRIPT.findall(response.content.decode()), url


class RefusingMailServer:
    """An email backend whose server is down (SMTPConnectError at every send)."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        import smtplib

        raise smtplib.SMTPConnectError(421, "mail.example.com: service not available")


def test_a_mail_server_that_is_down_never_makes_signup_a_500(client, settings):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingMailServer"

    answer = signup(client)

    assert answer.status_code in (200, 302), answer.status_code
    user = User.objects.get(username="ada")  # the account stands; the email can be resent
    assert balance(user) == 0
    page = client.get("/accounts/email/", follow=True).content.decode()
    assert "mail.example.com" not in page  # the raw cause is for the logs


@pytest.mark.parametrize(("accept_language", "stored"), [("de-DE,de;q=0.9", "de"), ("fr", "")])
def test_signup_keeps_the_language_the_page_was_in_so_emails_follow_it(
    client, accept_language, stored
):
    """Workers send emails (video ready, receipts) with no request to read a language
    from: the page's language at signup becomes the user's until they choose another."""
    signup(client, HTTP_ACCEPT_LANGUAGE=accept_language)

    assert User.objects.get(username="ada").language == stored
