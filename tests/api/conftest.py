from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts import tokens


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle history lives in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def bearer_client():
    """`bearer_client(user)`: an APIClient authenticated with a new API token of `user`
    (the raw token is on `.token`)."""

    def make(user, **token_kwargs) -> APIClient:
        _, raw = tokens.create_token(user=user, name="tests", **token_kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        client.token = raw
        return client

    return make


@pytest.fixture
def api(user, bearer_client) -> APIClient:
    return bearer_client(user)


@pytest.fixture
def session_api(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def valid_body() -> dict:
    return {
        "prompt": "A slow dolly shot across a misty lake at dawn",
        "image_url": "https://images.example.com/lake.jpg",
        "aspect_ratio": "16:9",
        "duration": "8s",
        "resolution": "720p",
        "generate_audio": True,
    }
