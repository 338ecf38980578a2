from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import ledger
from tests.factories import GenerationFactory

LEDGER = "/api/v1/ledger/"


def test_me_shows_credits_and_no_webhook_secret_to_a_token(api, user):
    generation = GenerationFactory(owner=user, cost_credits=320)
    ledger.hold(generation=generation)
    body = api.get("/api/v1/me/").json()
    assert body == {
        "username": user.username,
        "email": user.email,
        "balance": 1000,
        "reserved": 320,
        "available": 680,
        "owed": 0,
    }


def test_me_shows_what_is_owed_after_a_spent_purchase_was_taken_back(api, user):
    spent = GenerationFactory(owner=user, cost_credits=800)
    ledger.hold(generation=spent)
    ledger.capture(generation=spent)
    ledger.take_back(user=user, credits=1000, reason="refunded", idempotency_key="t:1")

    body = api.get("/api/v1/me/").json()

    assert (body["balance"], body["available"], body["owed"]) == (0, 0, 800)


def test_me_shows_the_webhook_secret_to_a_browser_session(session_api, user):
    assert session_api.get("/api/v1/me/").json()["webhook_secret"] == user.webhook_secret


def test_me_rejects_writes(api):
    response = api.post("/api/v1/me/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_rotate_webhook_secret(session_api, user):
    old = user.webhook_secret
    response = session_api.post("/api/v1/me/webhook-secret/rotate/")
    assert response.status_code == 200
    new = response.json()["webhook_secret"]
    user.refresh_from_db()
    assert new == user.webhook_secret != old
    assert new.startswith("whsec_")
    assert session_api.get("/api/v1/me/").json()["webhook_secret"] == new


def test_a_token_cannot_rotate_the_webhook_secret(api, user):
    old = user.webhook_secret
    assert api.post("/api/v1/me/webhook-secret/rotate/").status_code == 403
    user.refresh_from_db()
    assert user.webhook_secret == old


def test_ledger_lists_own_entries_newest_first(api, user, other_user):
    generation = GenerationFactory(owner=user, cost_credits=320)
    ledger.hold(generation=generation)
    ledger.release(generation=generation, reason="canceled")
    results = api.get(LEDGER).json()["results"]
    assert [e["kind"] for e in results] == ["release", "hold", "grant"]
    release, hold, grant = results
    assert hold == {
        "id": hold["id"],
        "kind": "hold",
        "amount": 0,
        "reserved_change": 320,
        "balance_after": 1000,
        "reserved_after": 320,
        "generation": str(generation.pk),
        "reason": "",
        "created_at": hold["created_at"],
    }
    assert release["reserved_change"] == -320 and release["reason"] == "canceled"
    assert grant["generation"] is None and grant["amount"] == 1000


def test_ledger_paginates_with_a_cursor(api, user):
    for _ in range(4):
        ledger.grant(user=user, amount=5, reason="bonus")
    page = api.get(LEDGER, {"page_size": 2}).json()
    seen = [e["id"] for e in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [e["id"] for e in page["results"]]
    assert len(seen) == 5 == len(set(seen))
    assert seen == sorted(seen, reverse=True)


def test_ledger_invalid_cursor_is_404_in_our_shape(api):
    response = api.get(LEDGER, {"cursor": "garbage"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_ledger_query_count_does_not_grow_with_page_size(api, user, django_assert_max_num_queries):
    for _ in range(30):
        ledger.grant(user=user, amount=1, reason="bonus")
    api.get(LEDGER)  # warm the token's last_used_at write
    with django_assert_max_num_queries(3):
        assert len(api.get(LEDGER, {"page_size": 2}).json()["results"]) == 2
    with django_assert_max_num_queries(3):
        assert len(api.get(LEDGER, {"page_size": 30}).json()["results"]) == 30


@pytest.mark.parametrize("path", ["/api/v1/me/", LEDGER, "/api/v1/me/webhook-secret/rotate/"])
def test_account_endpoints_need_authentication(db, path):
    client = APIClient()
    response = client.post(path) if "rotate" in path else client.get(path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
