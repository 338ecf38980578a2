"""allauth's emails and the Host header: every link allauth puts in an email (password
reset, address confirmation, "an account exists", "no account here") and the site its
notifications name start with PUBLIC_BASE_URL, whatever Host header the request that sent
them named. Before, allauth built them from that header: on a site that answers to any
host (ALLOWED_HOSTS = *), a password reset asked with `Host: evil.example` mailed the
victim a link that hands the reset key to evil.example."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import allauth
import pytest
from allauth.account.models import EmailAddress
from django.conf import settings as django_settings
from django.core import mail
from django.urls import reverse

from accounts.adapters import EMAIL_LINKS
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PUBLIC = "https://veo.example.com"
EVIL = "evil.example"
PASSWORD = "a quiet lighthouse 42"


@pytest.fixture
def lax_public_site(settings):
    """A site with a public address that answers to any Host header: the forged host gets
    past Django's first line, so what the links are made of is all that stands."""
    settings.ALLOWED_HOSTS = ["*"]
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


def verified_user(username: str = "ada", email: str = "ada@example.com"):
    user = UserFactory(username=username, email=email, password=PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def signup(client, username: str = "ada", email: str = "ada@example.com", **extra):
    data = {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD}
    return client.post(reverse("signup"), data, **extra)


def everything(message) -> str:
    """All a recipient sees of `message`: subject, bodies, headers."""
    bodies = [message.body, *(content for content, _ in getattr(message, "alternatives", []))]
    return "\n".join([message.subject, *bodies, str(message.extra_headers)])


def the_link(message, path: str) -> str:
    """The one absolute link in `message` to a page under `path`."""
    [url] = [
        u for u in re.findall(r"https?://\S+", message.body) if urlsplit(u).path.startswith(path)
    ]
    return url


def test_a_reset_email_links_to_the_public_address_whatever_the_host(client, lax_public_site):
    verified_user()

    client.post(reverse("password_reset"), {"email": "ada@example.com"}, HTTP_HOST=EVIL)

    [message] = mail.outbox
    url = the_link(message, "/accounts/password/reset/key/")
    assert url.startswith(f"{PUBLIC}/accounts/password/reset/key/")
    assert EVIL not in everything(message)
    # The key in the link still opens the form for a new password.
    response = client.get(urlsplit(url).path)
    assert response.status_code == 302
    assert response.url.endswith("-set-password/")


def test_a_signup_confirmation_links_to_the_public_address_whatever_the_host(
    client, lax_public_site
):
    signup(client, HTTP_HOST=EVIL)

    [message] = mail.outbox
    url = the_link(message, "/accounts/confirm-email/")
    assert url.startswith(f"{PUBLIC}/accounts/confirm-email/")
    assert EVIL not in everything(message)
    client.post(urlsplit(url).path)
    assert EmailAddress.objects.get(email="ada@example.com").verified


def test_a_new_address_confirmation_links_to_the_public_address_whatever_the_host(
    client, lax_public_site
):
    client.force_login(verified_user())

    client.post(
        reverse("account_email"),
        {"action_add": "", "email": "ada.second@example.com"},
        HTTP_HOST=EVIL,
    )

    [message] = mail.outbox
    assert the_link(message, "/accounts/confirm-email/").startswith(PUBLIC)
    assert EVIL not in everything(message)


def test_an_account_exists_email_links_to_the_public_address_whatever_the_host(
    client, lax_public_site
):
    verified_user()

    signup(client, username="ada2", HTTP_HOST=EVIL)  # the address is taken

    [message] = mail.outbox
    assert the_link(message, "/accounts/password/reset/") == f"{PUBLIC}/accounts/password/reset/"
    assert EVIL not in everything(message)


def test_a_no_account_here_email_links_to_the_public_address_whatever_the_host(
    client, lax_public_site, settings
):
    settings.ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = True  # off in settings.py; allauth can send it

    client.post(reverse("password_reset"), {"email": "nobody@example.com"}, HTTP_HOST=EVIL)

    [message] = mail.outbox
    assert the_link(message, "/accounts/signup/") == f"{PUBLIC}/accounts/signup/"
    assert EVIL not in everything(message)


def test_a_notification_names_the_public_site_whatever_the_host(client, lax_public_site, settings):
    # allauth's notifications end with the site's domain, which without the sites framework
    # is the request's Host header.
    settings.ACCOUNT_EMAIL_NOTIFICATIONS = True  # off in settings.py; allauth can send them
    client.force_login(verified_user())

    client.post(
        reverse("password_change"),
        {
            "oldpassword": PASSWORD,
            "password1": "a louder lighthouse 43",
            "password2": "a louder lighthouse 43",
        },
        HTTP_HOST=EVIL,
    )

    [message] = mail.outbox
    assert "veo.example.com" in message.body
    assert EVIL not in everything(message)


def test_without_a_public_address_links_take_the_allowed_host_asked(client, settings):
    settings.PUBLIC_BASE_URL = ""
    verified_user()

    client.post(reverse("password_reset"), {"email": "ada@example.com"}, HTTP_HOST="127.0.0.1:8000")

    [message] = mail.outbox
    url = the_link(message, "/accounts/password/reset/key/")
    assert urlsplit(url).netloc == "127.0.0.1:8000"


def test_every_link_allauths_emails_show_is_one_the_adapter_moves():
    """allauth hands its email templates links in context variables: a new one (a new
    allauth, a new template of ours) must join EMAIL_LINKS, or it would follow the Host
    header again."""
    roots = [
        Path(allauth.__file__).parent / "templates",
        *map(Path, django_settings.TEMPLATES[0]["DIRS"]),
    ]
    shown = {
        name
        for root in roots
        for template in root.glob("*/email/*")
        for name in re.findall(r"{{\s*(\w+_url)\s*}}", template.read_text())
    }
    assert shown >= {"activate_url", "password_reset_url", "signup_url"}  # the scan sees them
    assert shown <= set(EMAIL_LINKS)
