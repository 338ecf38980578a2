"""A throwaway Redis for scale-out tests, and the switch of this test process to it.

`redis_server` starts Debian's `/usr/bin/redis-server` on a free port (no persistence),
yields its URL and stops it afterwards. Without the binary the test is skipped, unless
CI=true (then it fails: CI must prove the Redis broker).

`redis_broker` makes the *test process* use that Redis like a web process started with
REDIS_URL would: Django's default cache becomes django-redis (the /healthz broker check
uses it) and django-q2 enqueues to the Redis broker. django-q2 reads its configuration
once, into the class attributes of `django_q.conf.Conf`, when `django_q.conf` is first
imported, and `get_broker()` looks at `Conf.ORM` / `Conf.DJANGO_REDIS` on every
`async_task`. So the cleanest switch is to patch those two attributes for the test (the
same values veoproject.settings derives from REDIS_URL: no `orm`, `django_redis:
"default"`). Worker processes get REDIS_URL in their environment instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, binary: str = REDIS_SERVER) -> None:
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="veo-redis-")
        self._log = open(os.path.join(self._dir.name, "redis.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
                "--daemonize",
                "no",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        self._dir.cleanup()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not (os.path.exists(REDIS_SERVER) or shutil.which("redis-server")):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{REDIS_SERVER} not found: CI must run the Redis broker tests")
        pytest.skip(f"{REDIS_SERVER} not found (Debian: apt-get install redis-server)")
    binary = REDIS_SERVER if os.path.exists(REDIS_SERVER) else shutil.which("redis-server")
    server = RedisServer(binary)
    try:
        yield server
    finally:
        server.stop()


def redis_cache(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }


@pytest.fixture
def redis_broker(redis_server: RedisServer, settings, monkeypatch) -> RedisServer:
    """This process enqueues to (and caches in) `redis_server`, as with REDIS_URL set."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    settings.REDIS_URL = redis_server.url
    settings.CACHES = redis_cache(redis_server.url)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "DJANGO_REDIS", "default")
    broker = get_broker()
    assert type(broker).__name__ == "Redis" and broker.ping()
    return redis_server
