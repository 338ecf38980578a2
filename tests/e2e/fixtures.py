"""Real worker processes for end-to-end tests: `manage.py qcluster` against the test
database, with the real fal_client pointed at the fake fal server.

The test process enqueues through the broker (django-q2's sync mode is switched off for
these tests), the worker runs the tasks, and the live server receives fal's webhooks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database as a DATABASE_URL another process can use."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{db['NAME']}"


def wait_for(predicate: Callable[[], object], *, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole cluster (sentinel, workers, pusher, monitor), and any of its
        processes that outlived their parent."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """The test is over: kill the cluster. A graceful SIGTERM took django-q2 about 5 s
        a test, and no test asserts on it (the takeover tests SIGKILL on purpose; the
        cluster and chaos suites stop their own)."""
        self.kill()
        self._log.close()

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_worker(
    transactional_db, live_server, settings, monkeypatch, tmp_path
) -> Iterator[Callable[..., WorkerProcess]]:
    """`start_worker(fal=<FakeFal or None>, webhooks=False, **env)` starts a qcluster.

    With `fal`, the worker uses the real fal gateway against that fake; without, the
    simulated backend. With `webhooks`, PUBLIC_BASE_URL is the live server, so fal's
    webhooks reach this test process.
    """
    from django_q.conf import Conf

    from generations.fal_webhooks import key_cache

    call_command("createcachetable", "django_cache", verbosity=0)  # the worker's cache
    monkeypatch.setattr(Conf, "SYNC", False)  # enqueue through the broker, like production
    workers: list[WorkerProcess] = []

    def start(*, fal=None, webhooks: bool = False, **extra_env: str) -> WorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "veoproject.settings",
            "DEBUG": "1",  # the same development SECRET_KEY as the tests: tasks are signed
            "DATABASE_URL": database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "Q_WORKERS": "2",
            "PUBLIC_BASE_URL": live_server.url if webhooks else "",
            "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "INFO",
            # The fake fal and the test's receivers live on 127.0.0.1.
            "FAL_MEDIA_HOSTS": "127.0.0.1,localhost",
            "PRIVATE_URLS_ALLOWED": "1",
            # Requests name images on hosts that do not exist (images.example.com).
            "IMAGE_URL_CHECK": "0",
        }
        env.pop("FAL_KEY", None)
        if fal is not None:
            # The live server (this process) verifies fal's webhooks with the fake's keys.
            settings.FAL_WEBHOOK_JWKS_URL = fal.jwks_url
            key_cache.clear()
            env.update(
                FAL_KEY="test-key-id:test-key-secret",
                FAL_QUEUE_RUN_HOST=fal.host,
                SSL_CERT_FILE=fal.ca_pem_path,
                FAL_WEBHOOK_JWKS_URL=fal.jwks_url,
            )
        env.update(extra_env)
        worker = WorkerProcess(env, tmp_path / f"qcluster-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
        if os.environ.get("E2E_SHOW_WORKER_LOGS"):
            print(worker.log_path.read_text(errors="replace"))
