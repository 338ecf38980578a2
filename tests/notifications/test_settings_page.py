"""The "Email notifications" page: the switches, the threshold and its default."""

from __future__ import annotations

import pytest

from notifications.preferences import preferences_for

pytestmark = pytest.mark.django_db

URL = "/account/notifications/"


def test_logged_out_is_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_the_page_shows_the_defaults_and_is_linked_from_the_menu(client, user):
    client.force_login(user)
    response = client.get(URL)

    assert response.status_code == 200
    form = response.context["form"]
    assert form.initial == {
        "video_emails": True,
        "low_balance_emails": True,
        "low_balance_threshold": None,
    }
    assert b"price of one default video (320 credits now)" in response.content
    assert f'href="{URL}"'.encode() in client.get("/credits/").content


def test_saving_the_switches(client, user):
    client.force_login(user)
    response = client.post(URL, {"low_balance_emails": "on", "low_balance_threshold": "500"})

    assert response.status_code == 302
    saved = preferences_for(user)
    assert (saved.video_emails, saved.low_balance_emails, saved.low_balance_threshold) == (
        False,
        True,
        500,
    )
    page = client.get(URL)
    assert page.context["form"].initial["low_balance_threshold"] == 500
    assert b"Email settings saved." in page.content


def test_an_empty_threshold_follows_the_default(client, user):
    client.force_login(user)
    client.post(URL, {"video_emails": "on", "low_balance_threshold": "500"})
    client.post(URL, {"video_emails": "on", "low_balance_threshold": ""})

    assert preferences_for(user).low_balance_threshold is None


@pytest.mark.parametrize("bad", ["-1", "abc", "100000000", "1.5"])
def test_a_bad_threshold_is_a_form_error(client, user, bad):
    client.force_login(user)
    response = client.post(URL, {"video_emails": "on", "low_balance_threshold": bad})

    assert response.status_code == 200
    assert response.context["form"].errors["low_balance_threshold"]
    assert preferences_for(user).pk is None  # nothing saved
