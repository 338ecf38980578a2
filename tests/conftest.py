from __future__ import annotations

import importlib

import pytest
from django.core.cache import cache

from generations.fal import reset_gateway
from generations.fal_webhooks import key_cache
from generations.pricing import ensure_default_rules
from tests.e2e.fixtures import start_worker  # noqa: F401
from tests.factories import UserFactory
from tests.fakefal.fixtures import fake_fal, fake_fal_factory, fake_fal_process  # noqa: F401


@pytest.fixture
def user(db):
    return UserFactory(credits=1000)


@pytest.fixture
def other_user(db):
    return UserFactory(credits=1000)


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", is_staff=True, is_superuser=True)


@pytest.fixture(autouse=True)
def _default_pricing_rules(request):
    """The seeded prices, also after a transactional test flushed the migration's rows."""
    uses_db = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
        "live_server",
    } & set(request.fixturenames)
    if not uses_db:
        return
    request.getfixturevalue("django_db_setup")
    with request.getfixturevalue("django_db_blocker").unblock():
        ensure_default_rules()
        _ensure_seeded_fal_prices()


def _ensure_seeded_fal_prices() -> None:
    """fal's seeded prices (migration 0006), also after a transactional test flushed them."""
    from django.apps import apps

    from generations.models import FalPrice

    if not FalPrice.objects.exists():
        seeds = importlib.import_module("generations.migrations.0006_fal_costs")
        seeds.seed_fal_prices(apps, None)


@pytest.fixture(autouse=True)
def _fresh_fal_gateway():
    """The gateway is one per process and follows the settings at its creation: each test
    gets the one its own settings ask for (simulated unless FAL_KEY), and fresh keys."""
    reset_gateway()
    key_cache.clear()
    yield
    reset_gateway()
    key_cache.clear()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Signup and password-reset counters live in the (per-process) cache: every test
    starts with none, whatever the tests before it signed up."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
