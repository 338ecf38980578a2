"""Fixtures for the chaos suite: a throwaway Redis and the switch to its broker."""

from tests.e2e.redis import redis_broker, redis_server  # noqa: F401
