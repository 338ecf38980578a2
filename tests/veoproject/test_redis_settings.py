"""With REDIS_URL the cache (throttles, JWKS) is Redis and sessions are cached_db: read
from Redis, kept in the database; without it, the database cache and database sessions."""

from __future__ import annotations

from tests.processes import printed_json

SHOW = """
import json, django; django.setup()
from django.conf import settings
print(json.dumps({"cache": settings.CACHES["default"]["BACKEND"],
                  "sessions": settings.SESSION_ENGINE}))
"""


def _settings(**env: str) -> dict:
    return printed_json(SHOW, drop=["REDIS_URL"], **env)


def test_redis_carries_cache_and_session_reads():
    found = _settings(REDIS_URL="redis://127.0.0.1:6379/0")
    assert found["cache"] == "django_redis.cache.RedisCache"
    assert found["sessions"] == "django.contrib.sessions.backends.cached_db"


def test_without_redis_everything_is_in_the_database():
    found = _settings()
    assert found["cache"] == "django.core.cache.backends.db.DatabaseCache"
    assert found["sessions"] == "django.contrib.sessions.backends.db"
