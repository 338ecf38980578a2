"""Abuse of the account pages from outside: guessing passwords on the portal and the admin
login, escaping the per-address limit with a forged X-Forwarded-For, flooding a victim's
inbox with reset emails, and farming accounts with a signup flood."""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from axes.models import AccessAttempt
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import tokens
from accounts.models import User
from tests.factories import UserFactory

# The lockouts live in axes's tables (an inet column on PostgreSQL): run on both.
pytestmark = [pytest.mark.django_db, pytest.mark.pg]

PASSWORD = "correct horse battery"  # tests/factories.py
LOCKED_OUT = "Too many failed logins"


@pytest.fixture
def user(user):
    """The shared `user`, with its address confirmed (a portal login needs it)."""
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def _post_login(client, url, username, password, **extra):
    # The portal's form (allauth) names the field "login", the admin's "username".
    field = "username" if url == reverse("admin:login") else "login"
    return client.post(url, {field: username, "password": password}, **extra)


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def _assert_locked_out(response) -> None:
    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED_OUT in page and "15 minutes" in page


def test_portal_login_brute_force_is_locked_out_even_with_the_right_password(client, user):
    url = reverse("login")
    for attempt in range(4):
        response = _post_login(client, url, user.username, f"guess {attempt}")
        assert response.status_code == 200  # the ordinary "wrong password" form
    _assert_locked_out(_post_login(client, url, user.username, "guess 5"))

    # The right password, now: still the lockout page, no session, no 500.
    _assert_locked_out(_post_login(client, url, user.username, PASSWORD))
    assert not _logged_in(client)

    # API tokens do not go through authenticate(): the integrator keeps working.
    _, raw = tokens.create_token(user=user, name="ci")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/me/").status_code == 200

    # The pause is fixed: once LOGIN_LOCKOUT_MINUTES have passed, the right password works.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    response = _post_login(client, url, user.username, PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_admin_login_brute_force_of_a_staff_user_is_locked_out(client, staff_user):
    url = reverse("admin:login")
    for attempt in range(4):
        assert _post_login(client, url, staff_user.username, f"guess {attempt}").status_code == 200
    _assert_locked_out(_post_login(client, url, staff_user.username, "guess 5"))

    response = _post_login(client, url, staff_user.username, PASSWORD)
    _assert_locked_out(response)
    assert not _logged_in(client)
    assert client.get(reverse("admin:index")).status_code == 302  # to the login page


def test_guesses_on_the_portal_and_the_admin_count_against_one_account(client, staff_user):
    for attempt in range(3):
        _post_login(client, reverse("login"), staff_user.username, f"portal {attempt}")
    _post_login(client, reverse("admin:login"), staff_user.username, "admin 1")
    _assert_locked_out(_post_login(client, reverse("admin:login"), staff_user.username, "admin 2"))
    _assert_locked_out(_post_login(client, reverse("login"), staff_user.username, PASSWORD))


def test_rotating_x_forwarded_for_does_not_escape_the_per_address_limit(client, settings, user):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 8
    url = reverse("login")
    # A different account each time (no account reaches its own limit) and a "new"
    # address in X-Forwarded-For each time: by default the header is not believed.
    for attempt in range(8):
        _post_login(
            client,
            url,
            f"victim{attempt}",
            "password1",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}",
        )
    response = _post_login(
        client, url, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.77"
    )
    _assert_locked_out(response)
    assert not _logged_in(client)

    # The lock is on the address: the same account from elsewhere logs in.
    response = _post_login(client, url, user.username, PASSWORD, REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 302


def test_behind_a_trusted_proxy_forged_forwarded_entries_do_not_escape_the_limit(
    client, settings, user
):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 6
    url = reverse("login")
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    # The attacker writes anything on the left; our proxy appends the real client.
    for attempt in range(6):
        forwarded = f"198.18.0.{attempt}, not-an-address, 203.0.113.9"
        _post_login(
            client, url, f"victim{attempt}", "password1", HTTP_X_FORWARDED_FOR=forwarded, **proxy
        )
    response = _post_login(
        client, url, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.9", **proxy
    )
    _assert_locked_out(response)

    # Other clients behind the same proxy are not locked out with it.
    response = _post_login(
        client, url, user.username, PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.44", **proxy
    )
    assert response.status_code == 302


def test_an_ipv6_client_cannot_rotate_addresses_within_its_64(client, settings, user):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 6
    url = reverse("login")
    for attempt in range(6):
        _post_login(
            client, url, f"victim{attempt}", "password1", REMOTE_ADDR=f"2001:db8:1:2::{attempt + 1}"
        )
    response = _post_login(client, url, user.username, PASSWORD, REMOTE_ADDR="2001:db8:1:2::ffff")
    _assert_locked_out(response)


def test_password_reset_flood_to_one_address_sends_at_most_three_emails(client, user, caplog):
    url = reverse("password_reset")
    answers = set()
    for attempt in range(6):
        email = user.email.upper() if attempt % 2 else user.email  # any letter case counts
        response = client.post(url, {"email": email}, REMOTE_ADDR=f"198.51.100.{attempt}")
        answers.add((response.status_code, response.url))

    assert len(mail.outbox) == 3
    # Over the limit the answer is the one of a sent email: nothing to enumerate.
    assert answers == {(302, reverse("account_reset_password_done"))}
    assert caplog.text.count("event=password_reset_limited by=email") == 3


def test_password_reset_flood_from_one_address_stops_at_the_client_limit(client, settings):
    settings.PASSWORD_RESET_CLIENT_RATE = "5/hour"
    victims = [UserFactory() for _ in range(8)]
    for victim in victims:
        response = client.post(reverse("password_reset"), {"email": victim.email})
        assert response.url == reverse("account_reset_password_done")
    assert len(mail.outbox) == 5


def test_signup_flood_from_one_address_stops_at_the_limit(client, caplog):
    for attempt in range(7):
        client.logout()
        response = client.post(
            reverse("signup"),
            {
                "username": f"farm{attempt}",
                "email": f"farm{attempt}@example.com",
                "password1": "a quiet lighthouse 42",
                "password2": "a quiet lighthouse 42",
            },
            HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}",
        )
        if attempt < 5:
            assert response.status_code == 302
        else:
            assert response.status_code == 429
            assert "Too many signups from your network" in response.content.decode()
    assert User.objects.filter(username__startswith="farm").count() == 5
    assert "event=signup_limited" in caplog.text

    # Another network still signs up.
    client.logout()
    response = client.post(
        reverse("signup"),
        {
            "username": "elsewhere",
            "email": "elsewhere@example.com",
            "password1": "a quiet lighthouse 42",
            "password2": "a quiet lighthouse 42",
        },
        REMOTE_ADDR="192.0.2.99",
    )
    assert response.status_code == 302
