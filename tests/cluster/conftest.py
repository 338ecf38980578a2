"""The cluster test's services: a throwaway Redis (tests/e2e/redis.py) and moto's S3 on
loopback (tests/s3/conftest.py), the same fixtures their own suites use."""

from tests.e2e.redis import redis_server  # noqa: F401
from tests.s3.conftest import moto_s3  # noqa: F401
