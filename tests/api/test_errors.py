"""One error shape everywhere under /api/, also for errors Django raises itself."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from veoproject.exceptions import api_exception_handler


@pytest.mark.parametrize(
    "path", ["/api/v1/nope/", "/api/v2/generations/", "/api/v1/generations/x/y/z/"]
)
def test_unknown_api_paths_are_404_json(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "fields": {}}
    }


def test_wrong_method_is_405_in_our_shape(api):
    response = api.delete("/api/v1/generations/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_unexpected_errors_are_500_in_our_shape_without_details(caplog):
    response = api_exception_handler(RuntimeError("secret internals"), {})
    assert response.status_code == 500
    assert response.data == {
        "error": {
            "code": "server_error",
            "message": "Something went wrong on our side.",
            "fields": {},
        }
    }
    assert "secret internals" not in str(response.data)
    assert "api_unhandled_error" in caplog.text


def test_validation_errors_list_every_field(api):
    response = api.post(
        "/api/v1/generations/",
        {"prompt": "", "duration": "1s", "aspect_ratio": "1:1"},
        format="json",
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert {"prompt", "duration", "aspect_ratio", "image"} <= set(fields)
    assert all(isinstance(m, list) and m for m in fields.values())


def test_anonymous_errors_come_with_www_authenticate(db):
    for method, path in [("get", "/api/v1/generations/"), ("post", "/api/v1/generations/quote/")]:
        response = getattr(APIClient(), method)(path)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
