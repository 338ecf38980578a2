"""One-click unsubscribe: the link in an email works logged out (GET asks, POST does it),
mail clients' RFC 8058 POST works without cookies, and a bad token changes nothing."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from notifications.models import NotificationPreference
from notifications.preferences import preferences_for
from notifications.unsubscribe import make_token
from tests.notifications.conftest import link_in, sent

pytestmark = pytest.mark.django_db


@pytest.fixture
def unsubscribe_path(user, run_video) -> str:
    """The path of the unsubscribe link in the user's "video ready" email."""
    run_video(user)
    (message,) = sent("Your video is ready")
    mail.outbox.clear()
    return link_in(message.body, "/notifications/unsubscribe/").removeprefix(
        "https://veo.example.com"
    )


def test_the_link_asks_first_then_unsubscribes_logged_out(user, unsubscribe_path):
    browser = Client(enforce_csrf_checks=True)  # logged out, CSRF checked as in production

    page = browser.get(unsubscribe_path)
    assert page.status_code == 200
    assert b"Stop video emails (ready or failed)" in page.content
    assert preferences_for(user).video_emails is True  # a GET (a link scanner) changes nothing

    done = browser.post(unsubscribe_path)
    assert done.status_code == 200
    assert b"You are unsubscribed" in done.content
    assert preferences_for(user).video_emails is False
    assert preferences_for(user).low_balance_emails is True  # only the one kind


def test_after_unsubscribing_no_video_email_comes(user, unsubscribe_path, run_video):
    Client().post(unsubscribe_path)
    run_video(user)

    assert mail.outbox == []


def test_rfc_8058_one_click_post(user, unsubscribe_path):
    response = Client(enforce_csrf_checks=True).post(
        unsubscribe_path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert preferences_for(user).video_emails is False


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "WzEsInZpZGVvIl0:1abc:forged",
        lambda user: make_token(user_id=user.pk, topic="video")[:-2] + "xx",  # tampered
        lambda user: make_token(user_id=user.pk, topic="video").replace(":", "", 1),
    ],
)
def test_a_bad_token_is_refused_and_changes_nothing(user, client, token):
    token = token(user) if callable(token) else token
    for method in (client.get, client.post):
        response = method(f"/notifications/unsubscribe/{token}/")
        assert response.status_code == 400
        assert b"not valid" in response.content
    assert not NotificationPreference.objects.exists()


def test_a_token_signed_for_something_else_is_refused(user, client):
    from django.core import signing

    other_salt = signing.dumps([user.pk, "video"], salt="something.else")
    unknown_kind = signing.dumps([user.pk, "receipts"], salt="notifications.unsubscribe")
    for token in (other_salt, unknown_kind):
        assert client.post(f"/notifications/unsubscribe/{token}/").status_code == 400
    assert preferences_for(user).video_emails is True


def test_a_token_names_its_own_user_only(user, other_user):
    Client().post(f"/notifications/unsubscribe/{make_token(user_id=user.pk, topic='video')}/")

    assert preferences_for(user).video_emails is False
    assert preferences_for(other_user).video_emails is True
