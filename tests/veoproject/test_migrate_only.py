"""`manage.py migrate` is the only database step a release needs: after it, on a fresh
database and with production settings, the API answers (the default cache is a database
table, which used to need `createcachetable` as well)."""

from __future__ import annotations

import sys

import pytest

from tests.processes import run_args

# Runs in the migrated database with the production settings: a throttled API request (the
# throttle reads and writes the cache) and a direct cache round trip.
PROBE = """
import django
django.setup()
from django.core.cache import cache
from django.test import Client
cache.set("probe", 1)
assert cache.get("probe") == 1
status = Client().get("/api/v1/me/", HTTP_HOST="localhost").status_code
print("status", status)
"""


@pytest.fixture
def production_env(tmp_path) -> dict[str, str]:
    return dict(
        DEBUG="0",
        FAL_SIMULATED="1",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="localhost",
        SECRET_KEY="migrate-only-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL=f"sqlite:///{tmp_path / 'release.sqlite3'}",
        MEDIA_ROOT=str(tmp_path / "media"),
    )


def _run(args: list[str], env: dict[str, str]):
    return run_args(args, drop=["REDIS_URL"], **env)


def test_migrate_alone_leaves_a_working_site(production_env):
    migrated = _run([sys.executable, "manage.py", "migrate", "--noinput"], production_env)
    assert migrated.returncode == 0, migrated.stderr
    probe = _run([sys.executable, "-c", PROBE], production_env)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert "status 401" in probe.stdout  # anonymous: refused cleanly, not a 500


def test_check_names_a_missing_cache_table(production_env):
    # A database built some other way (restored from a dump of the tables only): the
    # system check says what is missing and how to fix it.
    migrated = _run([sys.executable, "manage.py", "migrate", "--noinput"], production_env)
    assert migrated.returncode == 0, migrated.stderr
    drop = "import django; django.setup(); from django.db import connection; "
    drop += "connection.cursor().execute('DROP TABLE django_cache')"
    assert _run([sys.executable, "-c", drop], production_env).returncode == 0
    checked = _run([sys.executable, "manage.py", "check", "--database", "default"], production_env)
    assert "veoproject.W001" in checked.stdout + checked.stderr
    assert "migrate" in checked.stdout + checked.stderr
