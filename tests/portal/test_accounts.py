"""Signup, login (with suspended users), logout and passwords, through the portal pages."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import CreditAccount, LedgerEntry, User
from accounts.services import user_signup
from tests.factories import UserFactory
from veoproject.exceptions import ValidationFailed

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
SIGNUP = {
    "username": "ada",
    "email": "ada@example.com",
    "password": "a quiet lighthouse 42",
    "password_confirm": "a quiet lighthouse 42",
}


# --- Signup -------------------------------------------------------------------------------


def test_signup_creates_the_account_logs_in_and_grants_signup_credits_via_the_ledger(
    client, settings
):
    settings.SIGNUP_CREDITS = 500
    response = client.post(reverse("signup"), SIGNUP, follow=True)

    user = User.objects.get(username="ada")
    assert response.redirect_chain[-1][0] == reverse("studio")
    assert response.context["user"] == user
    entry = LedgerEntry.objects.get(account__user=user)
    assert (entry.kind, entry.amount, entry.idempotency_key) == (
        "grant",
        500,
        f"signup:{user.pk}",
    )
    assert CreditAccount.objects.get(user=user).balance == 500
    page = response.content.decode()
    assert "500 credits to start with" in page
    assert 'data-testid="available-credits">500<' in page


def test_signup_without_signup_credits_moves_nothing(client, settings):
    settings.SIGNUP_CREDITS = 0
    client.post(reverse("signup"), SIGNUP)
    user = User.objects.get(username="ada")
    assert not LedgerEntry.objects.filter(account__user=user).exists()
    assert CreditAccount.objects.get(user=user).balance == 0


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"username": "ADA"}, "username", "That username is taken."),
        ({"email": "Ada@Example.com"}, "email", "An account with this email address"),
        ({"username": "bad name!"}, "username", "Enter a valid username"),
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        (
            {"password": "12345678", "password_confirm": "12345678"},
            "password",
            "This password is too common.",
        ),
        ({"password_confirm": "something else"}, "password_confirm", "The two passwords differ."),
    ],
)
def test_signup_errors_come_back_on_the_form_with_the_input_kept(
    client, settings, change, field, message
):
    settings.SIGNUP_CREDITS = 500
    UserFactory(username="ada", email="ada@example.com")
    before = User.objects.count()
    data = {**SIGNUP, "username": "grace", "email": "grace@example.com", **change}

    response = client.post(reverse("signup"), data)

    assert response.status_code == 200
    form = response.context["form"]
    assert any(message in error for error in form.errors[field])
    assert User.objects.count() == before
    assert LedgerEntry.objects.filter(kind="grant").count() == 0
    page = response.content.decode()
    assert f'value="{data["username"]}"' in page
    assert f'value="{data["email"]}"' in page


def test_signup_service_refuses_duplicates_case_insensitively_and_grants_once(db, settings):
    settings.SIGNUP_CREDITS = 300
    user = user_signup(username="Lin", email="Lin@Example.com", password="a quiet lighthouse 42")
    assert user.email == "Lin@example.com"  # the domain is normalised
    with pytest.raises(ValidationFailed) as excinfo:
        user_signup(username="lin", email="LIN@example.com", password="a quiet lighthouse 42")
    assert set(excinfo.value.fields) == {"username", "email"}
    assert LedgerEntry.objects.filter(kind="grant").count() == 1


def test_logged_in_user_is_sent_from_signup_and_login_to_the_studio(client, user):
    client.force_login(user)
    assert client.get(reverse("signup")).url == reverse("studio")
    assert client.get(reverse("login")).url == reverse("studio")


# --- Login ----------------------------------------------------------------------------------


def test_login_goes_to_the_studio(client, user):
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("studio")


def test_login_honours_a_local_next_and_ignores_a_foreign_one(client, user):
    credentials = {"username": user.username, "password": PASSWORD}
    response = client.post(reverse("login"), {**credentials, "next": reverse("credits")})
    assert response.url == reverse("credits")
    client.logout()
    response = client.post(reverse("login"), {**credentials, "next": "https://evil.example/"})
    assert response.url == reverse("studio")


def _login_error(client, username, password) -> str:
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code == 200
    assert not response.context["user"].is_authenticated
    return " ".join(response.context["form"].non_field_errors())


def test_suspended_user_with_the_right_password_is_told_why(client):
    UserFactory(username="mallory", is_active=False, suspension_reason="Chargeback on 12 May.")
    error = _login_error(client, "mallory", PASSWORD)
    assert error == "This account is suspended: Chargeback on 12 May."


def test_suspended_user_without_a_reason_is_told_it_is_suspended(client):
    UserFactory(username="mallory", is_active=False)
    assert "This account is suspended." in _login_error(client, "mallory", PASSWORD)


def test_wrong_password_and_unknown_user_get_the_same_answer_even_when_suspended(client):
    UserFactory(username="mallory", is_active=False, suspension_reason="Chargeback.")
    UserFactory(username="active")
    wrong_for_suspended = _login_error(client, "mallory", "not the password")
    wrong_for_active = _login_error(client, "active", "not the password")
    unknown = _login_error(client, "nobody-here", "not the password")
    assert wrong_for_suspended == wrong_for_active == unknown
    assert "suspended" not in unknown and "Chargeback" not in wrong_for_suspended


def test_login_error_keeps_the_username(client, user):
    response = client.post(reverse("login"), {"username": user.username, "password": "nope"})
    assert f'value="{user.username}"' in response.content.decode()


def test_logout_is_a_post_and_goes_to_the_login_page(client, user):
    client.force_login(user)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.url == reverse("login")
    assert client.get(reverse("studio")).status_code == 302


# --- Passwords ------------------------------------------------------------------------------


def test_password_change_keeps_the_session_and_the_new_password_works(client, user):
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "another quiet lighthouse",
            "new_password2": "another quiet lighthouse",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("password_change_done")
    assert response.context["user"].is_authenticated
    user.refresh_from_db()
    assert user.check_password("another quiet lighthouse")


def test_password_change_with_a_wrong_old_password_is_refused(client, user):
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {"old_password": "nope", "new_password1": "x quiet 1234", "new_password2": "x quiet 1234"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["old_password"]


def test_password_reset_mails_a_link_that_sets_a_new_password(client, user):
    response = client.post(reverse("password_reset"), {"email": user.email})
    assert response.url == reverse("password_reset_done")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Reset your Veo Studio password"
    link = re.search(r"https?://[^/]+(/password-reset/\S+/)", mail.outbox[0].body).group(1)

    response = client.get(link, follow=True)  # Django swaps the token for a session marker
    set_password_url = response.redirect_chain[-1][0]
    assert response.context["validlink"]
    response = client.post(
        set_password_url,
        {"new_password1": "brand new quiet 77", "new_password2": "brand new quiet 77"},
    )
    assert response.url == reverse("password_reset_complete")
    user.refresh_from_db()
    assert user.check_password("brand new quiet 77")


def test_password_reset_sends_nothing_to_suspended_or_unknown_addresses(client):
    UserFactory(email="gone@example.com", is_active=False)
    for email in ("gone@example.com", "nobody@example.com"):
        response = client.post(reverse("password_reset"), {"email": email})
        assert response.url == reverse("password_reset_done")  # the same answer
    assert mail.outbox == []


def test_a_broken_reset_link_says_so(client, user):
    response = client.get(reverse("password_reset_confirm", args=["MQ", "bad-token"]))
    assert response.status_code == 200
    assert "This link does not work" in response.content.decode()
