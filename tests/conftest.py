from __future__ import annotations

import importlib
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts import tokens
from accounts.groups import MODERATORS
from generations.fal import reset_gateway
from generations.fal_webhooks import key_cache
from generations.pricing import ensure_default_rules
from tests.e2e.fixtures import start_worker  # noqa: F401
from tests.factories import REQUEST_BODY, UserFactory
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


@pytest.fixture
def moderator(db):
    user = UserFactory(username="moderator", is_staff=True)
    user.groups.add(Group.objects.get(name=MODERATORS))
    return user


@pytest.fixture
def superuser(staff_user):
    return staff_user


@pytest.fixture
def admin_client_for(client):
    """`admin_client_for(user)`: the test client logged in as `user`."""

    def login(user):
        client.force_login(user)
        return client

    return login


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
    """`user`'s API client, with a Bearer token."""
    return bearer_client(user)


@pytest.fixture
def session_api(user) -> APIClient:
    """`user`'s API client, with a browser session."""
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def valid_body() -> dict:
    """A valid generation request (a fresh copy of `tests.factories.REQUEST_BODY`)."""
    return dict(REQUEST_BODY)


@pytest.fixture
def real_fal(fake_fal_factory, settings, monkeypatch):  # noqa: F811 (the fixture above)
    """Point the real gateway (fal-client) at a fresh fake fal and return the fake's
    factory: `real_fal(queue_seconds=0, run_seconds=0.2)`. No webhooks (the site is not
    public), short HTTP timeouts, and no pause between fal-client's own retries."""
    settings.FAL_KEY = "key-id:key-secret"
    settings.FAL_SIMULATED = False
    settings.FAL_HTTP_TIMEOUT = 5.0
    settings.PUBLIC_BASE_URL = ""
    monkeypatch.setattr("fal_client.client._get_retry_delay", lambda *args, **kwargs: 0.0)
    return fake_fal_factory


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
        _ensure_catalogue_prices()


def _ensure_seeded_fal_prices() -> None:
    """fal's seeded prices (migration 0006), also after a transactional test flushed them."""
    from django.apps import apps

    from generations.models import FalPrice

    if not FalPrice.objects.exists():
        seeds = importlib.import_module("generations.migrations.0006_fal_costs")
        seeds.seed_fal_prices(apps, None)


def _ensure_catalogue_prices() -> None:
    """The catalogue's seeded prices (migration 0008), also after a flush."""
    from django.apps import apps

    from generations.catalogue import DEFAULT_MODEL
    from generations.models import PricingRule

    if not PricingRule.objects.exclude(endpoint=DEFAULT_MODEL).exists():
        seeds = importlib.import_module("generations.migrations.0008_catalogue")
        seeds.seed_prices(apps, None)


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
    """Throttle history and the signup and password-reset counters live in the
    (per-process) cache: every test starts with none, whatever the tests before it did."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(scope="session")
def compiled_locale(tmp_path_factory) -> Path:
    """locale/ with django.mo compiled from the committed django.po (as compilemessages
    does), in a folder of its own: nothing is written into the source tree. Without GNU
    gettext the catalogue cannot be compiled (the site then stays in English, as `make
    install` says), so the tests that read it are skipped; .ci/run installs gettext."""
    if shutil.which("msgfmt") is None:
        pytest.skip(
            "GNU gettext's msgfmt is not installed, so the German catalogue cannot be "
            "compiled (apt-get install gettext; .ci/run installs it)"
        )
    locale = tmp_path_factory.mktemp("compiled") / "locale"
    shutil.copytree(Path(django_settings.BASE_DIR) / "locale", locale)
    for po in locale.glob("*/LC_MESSAGES/*.po"):
        subprocess.run(["msgfmt", "--check", "-o", str(po.with_suffix(".mo")), str(po)], check=True)
    return locale
