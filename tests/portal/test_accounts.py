"""Signup, login (with suspended users), logout and passwords, through the portal pages
(django-allauth's views with our forms and templates). Email verification and signup
credits: tests/accounts/test_allauth.py."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.urls import reverse

from accounts.models import LedgerEntry, User
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
SIGNUP = {
    "username": "ada",
    "email": "ada@example.com",
    "password1": "a quiet lighthouse 42",
    "password2": "a quiet lighthouse 42",
}


def verify_email(user: User) -> User:
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


@pytest.fixture
def user(user):
    """The shared `user`, with its address confirmed (login needs it)."""
    return verify_email(user)


# --- Signup -------------------------------------------------------------------------------


def test_signup_creates_the_account_and_asks_to_confirm_the_address(client, settings):
    settings.SIGNUP_CREDITS = 500
    response = client.post(reverse("signup"), SIGNUP)

    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    user = User.objects.get(username="ada")
    assert user.email == "ada@example.com" and user.check_password(SIGNUP["password1"])
    assert not EmailAddress.objects.get(user=user).verified
    assert "_auth_user_id" not in client.session  # not before the address is confirmed
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]


def test_signup_page_promises_the_credits_after_confirmation(client, settings):
    settings.SIGNUP_CREDITS = 500
    page = client.get(reverse("signup")).content.decode()
    assert "500 free credits</strong> once you confirm your email address" in page
    settings.SIGNUP_CREDITS = 0
    assert "free credits" not in client.get(reverse("signup")).content.decode()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"username": "ADA"}, "username", "That username is taken."),
        ({"username": "bad name!"}, "username", "Enter a valid username"),
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        (
            {"password1": "12345678", "password2": "12345678"},
            "password1",
            "This password is too common.",
        ),
        ({"password2": "something else"}, "password2", "the same password"),
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
    assert any(message in error for error in form.errors[field]), form.errors
    assert User.objects.count() == before
    assert LedgerEntry.objects.filter(kind="grant").count() == 0
    page = response.content.decode()
    assert f'value="{data["username"]}"' in page
    assert f'value="{data["email"]}"' in page


def test_signup_with_a_taken_address_in_any_case_creates_nothing_and_tells_only_its_owner(
    client, settings
):
    settings.SIGNUP_CREDITS = 500
    UserFactory(username="ada", email="ada@example.com")
    response = client.post(
        reverse("signup"), {**SIGNUP, "username": "grace", "email": "ADA@Example.com"}
    )

    # The same answer as a fresh signup: the page does not say whether the address is used.
    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    assert not User.objects.filter(username="grace").exists()
    assert LedgerEntry.objects.filter(kind="grant").count() == 0
    # The owner of the address is told, with a way back in.
    (message,) = mail.outbox
    assert message.subject == "Your Veo Studio account"
    assert "an account already uses it" in message.body


def test_logged_in_user_is_sent_from_signup_and_login_to_the_studio(client, user):
    client.force_login(user)
    assert client.get(reverse("signup")).url == reverse("studio")
    assert client.get(reverse("login")).url == reverse("studio")


# --- Login ----------------------------------------------------------------------------------


def test_login_goes_to_the_studio(client, user):
    response = client.post(reverse("login"), {"login": user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response.url == reverse("studio")


def test_login_by_email_address_in_any_case(client, user):
    response = client.post(reverse("login"), {"login": user.email.upper(), "password": PASSWORD})
    assert response.url == reverse("studio")
    assert client.session["_auth_user_id"] == str(user.pk)


def test_login_honours_a_local_next_and_ignores_a_foreign_one(client, user):
    credentials = {"login": user.username, "password": PASSWORD}
    response = client.post(reverse("login"), {**credentials, "next": reverse("credits")})
    assert response.url == reverse("credits")
    client.logout()
    response = client.post(reverse("login"), {**credentials, "next": "https://evil.example/"})
    assert response.url == reverse("studio")


def test_an_unconfirmed_address_gets_a_new_link_instead_of_a_session(client):
    unconfirmed = UserFactory(username="lin")
    response = client.post(reverse("login"), {"login": "lin", "password": PASSWORD})
    assert response.url == reverse("account_email_verification_sent")
    assert "_auth_user_id" not in client.session
    assert [m.to for m in mail.outbox] == [[unconfirmed.email]]


def _login_error(client, login, password) -> str:
    response = client.post(reverse("login"), {"login": login, "password": password})
    assert response.status_code == 200
    assert not response.context["user"].is_authenticated
    return " ".join(response.context["form"].non_field_errors())


def test_suspended_user_with_the_right_password_is_told_why(client):
    UserFactory(username="mallory", is_active=False, suspension_reason="Chargeback on 12 May.")
    error = _login_error(client, "mallory", PASSWORD)
    assert error == "This account is suspended: Chargeback on 12 May."
    # By email address too.
    assert _login_error(client, "mallory@example.com", PASSWORD) == error


def test_suspended_user_without_a_reason_is_told_it_is_suspended(client):
    UserFactory(username="mallory", is_active=False)
    assert "This account is suspended." in _login_error(client, "mallory", PASSWORD)


def test_wrong_password_and_unknown_user_get_the_same_answer_even_when_suspended(client):
    UserFactory(username="mallory", is_active=False, suspension_reason="Chargeback.")
    verify_email(UserFactory(username="active"))
    wrong_for_suspended = _login_error(client, "mallory", "not the password")
    wrong_for_active = _login_error(client, "active", "not the password")
    unknown = _login_error(client, "nobody-here", "not the password")
    assert wrong_for_suspended == wrong_for_active == unknown
    assert "suspended" not in unknown and "Chargeback" not in wrong_for_suspended


def test_login_error_keeps_the_username(client, user):
    response = client.post(reverse("login"), {"login": user.username, "password": "nope"})
    assert f'value="{user.username}"' in response.content.decode()


def test_logout_is_a_post_and_goes_to_the_login_page(client, user):
    client.force_login(user)
    page = client.get(reverse("logout"))  # a page asking to confirm, which logs out nothing
    assert page.status_code == 200 and "_auth_user_id" in client.session
    response = client.post(reverse("logout"))
    assert response.url == reverse("login")
    assert client.get(reverse("generation-list")).status_code == 302


# --- Passwords ------------------------------------------------------------------------------


def test_password_change_keeps_the_session_and_the_new_password_works(client, user):
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {
            "oldpassword": PASSWORD,
            "password1": "another quiet lighthouse",
            "password2": "another quiet lighthouse",
        },
        follow=True,
    )
    assert response.status_code == 200
    assert response.context["user"].is_authenticated
    assert "Password successfully changed." in response.content.decode()
    user.refresh_from_db()
    assert user.check_password("another quiet lighthouse")


def test_password_change_with_a_wrong_old_password_is_refused(client, user):
    client.force_login(user)
    response = client.post(
        reverse("password_change"),
        {"oldpassword": "nope", "password1": "x quiet 1234", "password2": "x quiet 1234"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["oldpassword"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_password_reset_mails_a_link_that_sets_a_new_password(client, user):
    response = client.post(reverse("password_reset"), {"email": user.email})
    assert response.url == reverse("account_reset_password_done")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Reset your Veo Studio password"
    link = re.search(r"https?://[^/]+(/accounts/password/reset/key/\S+/)", mail.outbox[0].body)
    assert link is not None

    response = client.get(link.group(1), follow=True)  # allauth swaps the key for a session
    set_password_url = response.redirect_chain[-1][0]
    assert "password1" in response.context["form"].fields
    response = client.post(
        set_password_url,
        {"password1": "brand new quiet 77", "password2": "brand new quiet 77"},
    )
    assert response.url == reverse("account_reset_password_from_key_done")
    user.refresh_from_db()
    assert user.check_password("brand new quiet 77")


def test_password_reset_sends_nothing_to_suspended_or_unknown_addresses(client):
    UserFactory(email="gone@example.com", is_active=False)
    for email in ("gone@example.com", "nobody@example.com"):
        response = client.post(reverse("password_reset"), {"email": email})
        assert response.url == reverse("account_reset_password_done")  # the same answer
    assert mail.outbox == []


def test_a_broken_reset_link_says_so(client, user):
    response = client.get(
        reverse("account_reset_password_from_key", kwargs={"uidb36": "1", "key": "bad-token"}),
        follow=True,
    )
    assert response.status_code == 200
    assert "This link does not work" in response.content.decode()
