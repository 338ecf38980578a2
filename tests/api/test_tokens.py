from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import tokens
from accounts.models import ApiToken
from tests.factories import UserFactory

ME = "/api/v1/me/"


def _assert_401(response, message_part: str = "", *, token_sent: bool = True) -> None:
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == (
        'Bearer realm="api", error="invalid_token"' if token_sent else 'Bearer realm="api"'
    )
    error = response.json()["error"]
    assert error["code"] in ("authentication_failed", "not_authenticated")
    assert message_part.lower() in error["message"].lower()


# --- The token service ----------------------------------------------------------------------


def test_only_the_hash_of_a_token_is_stored(user):
    token, raw = tokens.create_token(user=user, name="ci")
    assert raw.startswith(f"veo_{token.prefix}_")
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert raw not in {str(v) for v in stored.values()}
    assert stored["token_hash"] == hashlib.sha256(raw.encode()).hexdigest()


def test_tokens_are_unique_and_random(user):
    raws = {tokens.create_token(user=user, name=f"t{i}")[1] for i in range(5)}
    assert len(raws) == 5
    assert all(len(raw) == len("veo_") + 12 + 1 + 43 for raw in raws)


def test_token_needs_a_name(user):
    with pytest.raises(tokens.ValidationFailed) as excinfo:
        tokens.create_token(user=user, name="   ")
    assert "name" in excinfo.value.fields


def test_token_expiry_must_be_in_the_future(user):
    with pytest.raises(tokens.ValidationFailed):
        tokens.create_token(user=user, name="x", expires_at=timezone.now() - timedelta(seconds=1))


def test_a_user_has_a_bounded_number_of_tokens(user, settings, monkeypatch):
    monkeypatch.setattr(tokens, "MAX_ACTIVE_TOKENS_PER_USER", 2)
    tokens.create_token(user=user, name="a")
    tokens.create_token(user=user, name="b")
    with pytest.raises(tokens.ValidationFailed) as excinfo:
        tokens.create_token(user=user, name="c")
    assert excinfo.value.code == "too_many_tokens"


def test_a_token_with_the_right_prefix_but_wrong_secret_fails(user):
    _, raw = tokens.create_token(user=user, name="x")
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    with pytest.raises(tokens.TokenInvalid):
        tokens.authenticate_token(forged)


# --- Bearer authentication -------------------------------------------------------------------


def test_bearer_token_authenticates(api, user):
    response = api.get(ME)
    assert response.status_code == 200
    assert response.json()["username"] == user.username


def test_no_credentials_is_401_with_www_authenticate(db):
    _assert_401(APIClient().get(ME), "not provided", token_sent=False)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer a b",
        "Bearer not-a-token",
        "Bearer veo_short_x",
        "Bearer veo_0123456789ab_" + "A" * 43,  # well-formed, unknown
        "bearer veo_zzzzzzzzzzzz_" + "A" * 43,
    ],
)
def test_malformed_or_unknown_token_is_401(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    _assert_401(client.get(ME))


def test_non_ascii_token_is_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer veo_\u00e9\u00e9")
    _assert_401(client.get(ME))


def test_revoked_token_is_401(user, bearer_client):
    client = bearer_client(user)
    token = ApiToken.objects.get(user=user)
    tokens.revoke_token(token=token)
    _assert_401(client.get(ME), "revoked")


def test_expired_token_is_401(user, bearer_client):
    client = bearer_client(user, expires_at=timezone.now() + timedelta(hours=1))
    ApiToken.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_401(client.get(ME), "expired")


def test_token_of_suspended_user_is_401(user, api):
    user.is_active = False
    user.save(update_fields=["is_active"])
    _assert_401(api.get(ME), "suspended")


def test_a_bad_bearer_token_does_not_fall_back_to_the_session(user, session_api):
    session_api.credentials(HTTP_AUTHORIZATION="Bearer veo_0123456789ab_" + "A" * 43)
    _assert_401(session_api.get(ME))


def test_last_used_is_recorded_at_most_once_a_minute(user, api):
    token = ApiToken.objects.get(user=user)
    assert token.last_used_at is None
    api.get(ME)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    api.get(ME)
    token.refresh_from_db()
    assert token.last_used_at == first  # not rewritten within the minute
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    api.get(ME)
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(minutes=2)


def test_session_auth_keeps_csrf_protection(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/api/v1/tokens/", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
    assert not ApiToken.objects.exists()


# --- /api/v1/tokens/ -------------------------------------------------------------------------


def test_create_token_shows_it_once(session_api, user):
    response = session_api.post("/api/v1/tokens/", {"name": "deploy bot"}, format="json")
    assert response.status_code == 201
    body = response.json()
    raw = body["token"]
    assert raw.startswith(body["prefix"])
    assert body["name"] == "deploy bot" and body["expired"] is False

    listed = session_api.get("/api/v1/tokens/").json()
    assert [t["id"] for t in listed] == [body["id"]]
    assert "token" not in listed[0]
    assert raw not in str(listed)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(ME).status_code == 200


def test_create_token_with_expiry(session_api):
    expires = (timezone.now() + timedelta(days=30)).isoformat()
    response = session_api.post(
        "/api/v1/tokens/", {"name": "short", "expires_at": expires}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["expires_at"] is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x", "expires_at": "yesterday"}, "expires_at"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_create_token_validation(session_api, body, field):
    response = session_api.post("/api/v1/tokens/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not ApiToken.objects.exists()


def test_a_token_cannot_manage_tokens(api, user):
    assert api.get("/api/v1/tokens/").status_code == 403
    response = api.post("/api/v1/tokens/", {"name": "escalate"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    token = ApiToken.objects.get(user=user)
    assert api.delete(f"/api/v1/tokens/{token.pk}/").status_code == 403
    assert ApiToken.objects.filter(user=user).count() == 1


def test_token_endpoints_need_authentication(db):
    _assert_401(APIClient().get("/api/v1/tokens/"), token_sent=False)


def test_revoke_token(session_api, user):
    token, _ = tokens.create_token(user=user, name="old")
    response = session_api.delete(f"/api/v1/tokens/{token.pk}/")
    assert response.status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert session_api.get("/api/v1/tokens/").json() == []
    assert session_api.delete(f"/api/v1/tokens/{token.pk}/").status_code == 404


def test_cannot_revoke_another_users_token(session_api, other_user):
    token, _ = tokens.create_token(user=other_user, name="theirs")
    response = session_api.delete(f"/api/v1/tokens/{token.pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    token.refresh_from_db()
    assert token.revoked_at is None


# --- create_api_token ---------------------------------------------------------------------------


def test_create_api_token_command_prints_a_working_token(db):
    user = UserFactory(username="cli-user")
    out, err = StringIO(), StringIO()
    call_command("create_api_token", "cli-user", "--name", "cli", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    assert tokens.authenticate_token(raw).user == user
    assert "shown only now" in err.getvalue()
    assert ApiToken.objects.get(user=user).name == "cli"


def test_create_api_token_command_with_expiry(db):
    UserFactory(username="cli-user")
    call_command(
        "create_api_token", "cli-user", "--name", "x", "--expires-in-days", "7", stdout=StringIO()
    )
    expires = ApiToken.objects.get().expires_at
    assert timedelta(days=6) < expires - timezone.now() <= timedelta(days=7)


@pytest.mark.parametrize(
    "args",
    [
        ["nobody", "--name", "x"],
        ["cli-user", "--name", ""],
        ["cli-user", "--name", "x", "--expires-in-days", "0"],
    ],
)
def test_create_api_token_command_errors(db, args):
    UserFactory(username="cli-user")
    with pytest.raises(CommandError):
        call_command("create_api_token", *args, stdout=StringIO(), stderr=StringIO())
    assert not ApiToken.objects.exists()


def test_create_api_token_refuses_suspended_users(db):
    UserFactory(username="gone", is_active=False)
    with pytest.raises(CommandError, match="suspended"):
        call_command("create_api_token", "gone", "--name", "x", stdout=StringIO())
