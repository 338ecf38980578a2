"""The API's schema and docs for anonymous visitors only when API_DOCS_PUBLIC (issue 10)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import tokens

pytestmark = pytest.mark.django_db


def test_private_docs_and_schema_are_closed_to_anonymous_visitors(settings):
    settings.API_DOCS_PUBLIC = False
    anonymous = Client()
    schema = anonymous.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 401
    assert schema.json()["error"]["code"] == "not_authenticated"
    docs = anonymous.get("/api/docs/")
    assert docs.status_code == 302 and docs.url.startswith("/accounts/login/?next=/api/docs/")
    assert anonymous.get("/api/docs/?script=").status_code == 302


def test_private_docs_and_schema_open_to_signed_in_users(settings, client, user):
    settings.API_DOCS_PUBLIC = False
    client.force_login(user)
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/").status_code == 200
    _, raw = tokens.create_token(user=user, name="docs")
    by_token = Client().get("/api/schema/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert by_token.status_code == 200


def test_public_docs_are_open_by_default(client):
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/schema/").status_code == 200
