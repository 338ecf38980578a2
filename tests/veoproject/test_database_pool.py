"""DATABASE_POOL: the web processes use psycopg's pool (no per-request health-check
query); qcluster never does, because it forks its workers and a pool does not survive a
fork (django-q2's documented trap)."""

from __future__ import annotations

import os

import pytest

from tests.processes import printed_json, run_python

PG_URL = "postgres://veo:secret@127.0.0.1:5432/veo"

SHOW = """
import sys, json
sys.argv = {argv!r}
import django; django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({{"pool": db.get("OPTIONS", {{}}).get("pool"),
                  "max_age": db["CONN_MAX_AGE"], "health": db["CONN_HEALTH_CHECKS"]}}))
"""


def _settings(argv: list[str], **env: str) -> dict:
    return printed_json(SHOW.format(argv=argv), drop=["DATABASE_URL", "DATABASE_POOL"], **env)


def test_web_process_gets_a_pool_and_no_health_checks():
    db = _settings(["gunicorn"], DATABASE_URL=PG_URL, DATABASE_POOL="8")
    assert db["pool"]["max_size"] == 8
    assert db["max_age"] == 0
    assert db["health"] is False


def test_qcluster_never_gets_a_pool():
    db = _settings(["manage.py", "qcluster"], DATABASE_URL=PG_URL, DATABASE_POOL="8")
    assert db["pool"] is None
    assert db["health"] is True


def test_no_pool_unless_asked():
    db = _settings(["gunicorn"], DATABASE_URL=PG_URL)
    assert db["pool"] is None
    assert db["health"] is True


POOLED_REQUESTS = """
import django; django.setup()
from concurrent.futures import ThreadPoolExecutor
from django.db import connection
from django.test import Client
from accounts.models import User
from django.core.management import call_command
call_command("migrate", verbosity=0)
User.objects.filter(username="pooled").delete()
user = User.objects.create_user("pooled", password="x")
login = Client()
login.force_login(user)
cookies = login.cookies
connection.close()  # back to the pool: each request below borrows and returns one
def me(_):
    client = Client()
    client.cookies = cookies
    try:
        return client.get("/api/v1/me/", HTTP_HOST="localhost").status_code
    finally:
        connection.close()  # what a real server's request_finished does; the test client does not
with ThreadPoolExecutor(6) as pool:
    codes = list(pool.map(me, range(30)))
print("pool", type(connection.pool).__name__, "codes", sorted(set(codes)))
"""


@pytest.mark.pg
def test_pooled_connections_serve_requests_on_postgresql(tmp_path):
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        pytest.skip("runs on the throwaway PostgreSQL (make test-pg)")
    env = dict(
        DATABASE_URL=url.rsplit("/", 1)[0] + "/veo_pool_check",
        DATABASE_POOL="3",
        MEDIA_ROOT=str(tmp_path),
    )
    create = f"import psycopg; c = psycopg.connect({url!r}, autocommit=True); "
    create += "c.execute('DROP DATABASE IF EXISTS veo_pool_check'); "
    create += "c.execute('CREATE DATABASE veo_pool_check')"
    assert run_python(create, **env).returncode == 0
    done = run_python(POOLED_REQUESTS, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pool ConnectionPool codes [200]" in done.stdout
