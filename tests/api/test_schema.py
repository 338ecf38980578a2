"""The OpenAPI schema is valid, the API keeps to it, and its docs need no CDN."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts import tokens


def _load_schema():
    from veoproject.wsgi import application

    # Loaded at collection: generating the schema touches no database.
    return schemathesis.openapi.from_wsgi("/api/schema/", application)


schema = _load_schema()


@pytest.fixture(autouse=True)
def _in_process_requests(db, settings):
    # Like Django's test client: keep the test transaction's connection open across the
    # in-process WSGI requests (Django closes old connections at each request's end).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # Let creates through, so the examples reach deeper than the limits.
    settings.API_CREATE_RATE = None
    settings.API_READ_RATE = None
    settings.MAX_IN_FLIGHT_PER_USER = 0
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def schema_token(user) -> str:
    return tokens.create_token(user=user, name="schemathesis")[1]


@schema.parametrize()
@hypothesis_settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, schema_token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {schema_token}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
        ],
    )


def test_schema_documents_every_endpoint_and_error(client):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = document["paths"]
    assert set(paths) >= {
        "/api/v1/generations/",
        "/api/v1/generations/{id}/",
        "/api/v1/generations/{id}/cancel/",
        "/api/v1/generations/quote/",
        "/api/v1/me/",
        "/api/v1/me/webhook-secret/rotate/",
        "/api/v1/ledger/",
        "/api/v1/tokens/",
        "/api/v1/tokens/{id}/",
    }
    create = paths["/api/v1/generations/"]["post"]
    assert {"201", "400", "401", "402", "422", "429"} <= set(create["responses"])
    assert "Retry-After" in create["responses"]["429"]["headers"]
    assert "WWW-Authenticate" in create["responses"]["401"]["headers"]
    assert {p["name"] for p in create["parameters"]} >= {"Idempotency-Key"}
    assert set(create["requestBody"]["content"]) >= {"application/json", "multipart/form-data"}
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path in paths.values():
        for operation in path.values():
            assert "401" in operation["responses"], operation["operationId"]
            assert operation.get("summary"), operation["operationId"]


def test_swagger_ui_loads_without_any_cdn(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    scripts = [a for a in assets if a.endswith(".js")]
    assert any("swagger-ui-bundle" in a for a in scripts)
    # The start-up script is served by the docs view itself (not inline: the CSP).
    init_script = [a for a in assets if a.startswith("/api/docs/?")]
    assert len(init_script) == 1, assets
    for asset in assets:
        assert not re.match(r"^(https?:)?//", asset), f"{asset} would load from another host"
        if asset in init_script:
            continue
        path = asset.split("?")[0].removeprefix("/static/")
        assert finders.find(path), f"{asset} is not a local static file"
    script = Client().get(init_script[0].replace("&amp;", "&"))
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
