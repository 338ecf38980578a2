"""The credits history, API tokens and the webhook secret, and the site's frame (header,
banner, error pages)."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import ledger
from accounts.models import ApiToken
from accounts.views import NEW_TOKEN_SESSION_KEY
from generations import services
from tests.portal.conftest import PARAMS
from veoproject.errors import server_error

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


# --- Credits ----------------------------------------------------------------------------------


def test_credits_page_lists_entries_with_kind_amount_balance_generation_and_reason(
    logged_in, user, other_user
):
    generation = services.accept(user=user, params=PARAMS).generation
    ledger.adjust(user=user, amount=-50, reason="Duplicate top-up reversed")
    ledger.grant(user=other_user, amount=7, reason="Not yours")

    response = logged_in.get(reverse("credits"))
    page = html(response)
    kinds = [entry.kind for entry in response.context["entries"]]
    assert kinds == ["adjustment", "hold", "grant"]  # newest first
    assert "Duplicate top-up reversed" in page and "\u221250" in page
    assert reverse("generation-detail", args=[generation.pk]) in page
    assert "+1,000" in page and "test credits" in page
    assert "Not yours" not in page
    assert 'data-testid="summary-available">630<' in page  # 1000 - 50 - 320 held


def test_credits_page_is_paginated(logged_in, user):
    for n in range(30):
        ledger.grant(user=user, amount=1, reason=f"drip {n}")
    first = logged_in.get(reverse("credits"))
    second = logged_in.get(reverse("credits"), {"page": 2})
    assert len(first.context["entries"]) == 25
    assert len(second.context["entries"]) == 6  # 30 drips + the fixture's grant
    assert "Page 2 of 2" in html(second)


def test_credits_page_links_to_voucher_redemption(logged_in):
    url = reverse("voucher-redeem")
    assert f'href="{url}"' in html(logged_in.get(reverse("credits")))


# --- API tokens -------------------------------------------------------------------------------


def test_new_token_is_shown_once_and_works_on_the_api(logged_in, user, client):
    response = logged_in.post(
        reverse("tokens"), {"name": "render farm", "expires_in_days": "30"}, follow=True
    )
    token = ApiToken.objects.get(user=user)
    raw = response.context["new_token"]["raw"]
    assert raw.startswith(f"veo_{token.prefix}_")
    assert raw in html(response) and "shown only this once" in html(response)
    assert token.expires_at is not None
    assert NEW_TOKEN_SESSION_KEY not in logged_in.session

    again = logged_in.get(reverse("tokens"))
    assert raw not in html(again)
    assert f"veo_{token.prefix}_" in html(again)  # the list shows the prefix only

    me = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert me.status_code == 200
    assert me.json()["username"] == user.username


def test_token_without_a_name_is_a_form_error(logged_in, user):
    response = logged_in.post(reverse("tokens"), {"name": "", "expires_in_days": ""})
    assert response.status_code == 200
    assert response.context["form"].errors["name"]
    assert not ApiToken.objects.filter(user=user).exists()


def test_revoked_token_stops_working_and_is_marked(logged_in, user):
    from accounts import tokens

    token, raw = tokens.create_token(user=user, name="cms")
    response = logged_in.post(reverse("token-revoke", args=[token.pk]), follow=True)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert "revoked" in html(response).lower()
    me = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert me.status_code == 401


def test_another_users_token_cannot_be_revoked(logged_in, other_user):
    from accounts import tokens

    token, _ = tokens.create_token(user=other_user, name="theirs")
    assert logged_in.post(reverse("token-revoke", args=[token.pk])).status_code == 404
    assert logged_in.get(reverse("token-revoke", args=[token.pk])).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


def test_webhook_secret_rotates(logged_in, user):
    before = user.webhook_secret
    assert before in html(logged_in.get(reverse("tokens")))
    response = logged_in.post(reverse("webhook-secret-rotate"))
    assert response.url.endswith("#webhook-secret")
    user.refresh_from_db()
    assert user.webhook_secret != before and user.webhook_secret.startswith("whsec_")


# --- Header, banner, error pages --------------------------------------------------------------


def test_header_shows_balance_reserved_and_available(logged_in, user):
    services.accept(user=user, params=PARAMS)
    page = html(logged_in.get(reverse("credits")))
    assert 'data-testid="available-credits">680<' in page
    assert 'data-testid="reserved-credits">320<' in page
    assert 'data-testid="balance-credits">1,000<' in page


def test_simulated_backend_banner_shows_only_when_simulated(client, settings):
    settings.FAL_SIMULATED = True
    assert "Simulated backend." in html(client.get(reverse("login")))
    settings.FAL_SIMULATED = False
    assert "Simulated backend." not in html(client.get(reverse("login")))


def test_unknown_portal_page_is_our_404_page_and_api_paths_stay_json(logged_in):
    page = logged_in.get("/no/such/page/")
    assert page.status_code == 404
    assert "Nothing here" in html(page) and "site.css" in html(page)
    api = logged_in.get("/api/v1/no-such-thing/")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"


def test_500_page_renders_without_touching_the_database(django_assert_num_queries):
    request = RequestFactory().get("/videos/")
    with django_assert_num_queries(0):
        response = server_error(request)
    assert response.status_code == 500
    assert "Something went wrong on our side" in html(response)
    api = server_error(RequestFactory().get("/api/v1/me/"))
    assert api.status_code == 500 and b'"server_error"' in api.content
