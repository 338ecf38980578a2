"""Holding the web workers hostage through fal's key URL.

When fal's JWKS endpoint is slow, a process-wide lock held around the fetch made parallel
webhooks queue behind it (10, 20, 30 s...), so a slow key server (or a flood of unsigned
webhooks while it was slow) could take every web worker. Now at most one fetch is in
flight per process, with a short deadline; the others are answered (401) at once, and a
failed fetch is remembered for a while, so webhooks meanwhile cause no new fetch.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from generations import services
from generations.models import Generation

HANG_SECONDS = 3.0
PARALLEL = 5


class HangingJwks:
    """A key server that counts its requests and answers none in time."""

    def __init__(self) -> None:
        self.fetches = 0
        self._lock = threading.Lock()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.fetches += 1
                outer.release.wait(HANG_SECONDS)
                try:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up long ago

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hanging_jwks(settings) -> Iterator[HangingJwks]:
    server = HangingJwks()
    settings.FAL_WEBHOOK_JWKS_URL = server.url
    settings.FAL_JWKS_TIMEOUT = 0.5
    settings.PUBLIC_BASE_URL = "https://veo.example.com"
    yield server
    server.close()


def post_signed_looking_webhook(client: Client) -> tuple[int, float]:
    """A webhook with a valid URL token and well-formed (but unverifiable) signature
    headers: it gets as far as needing fal's keys. Returns (status, finished at)."""
    url = urlsplit(services.fal_webhook_url(Generation(id=uuid.uuid4())))  # no row needed
    response = client.post(
        f"{url.path}?{url.query}",
        data=b'{"request_id": "r1", "status": "OK"}',
        content_type="application/json",
        HTTP_X_FAL_WEBHOOK_REQUEST_ID="r1",
        HTTP_X_FAL_WEBHOOK_USER_ID="u1",
        HTTP_X_FAL_WEBHOOK_TIMESTAMP=str(int(time.time())),
        HTTP_X_FAL_WEBHOOK_SIGNATURE="00" * 64,
    )
    return response.status_code, time.monotonic()


def test_parallel_webhooks_do_not_wait_on_a_hanging_key_server(hanging_jwks):
    results: list[tuple[int, float]] = []
    results_lock = threading.Lock()
    start = threading.Barrier(PARALLEL)

    def one() -> None:
        client = Client()
        start.wait()
        outcome = post_signed_looking_webhook(client)
        with results_lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(PARALLEL)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == PARALLEL
    assert [status for status, _ in results] == [401] * PARALLEL  # fail closed
    # One fetch for the whole process; the others did not queue behind it.
    assert hanging_jwks.fetches == 1
    # Every request ended before the key server would have answered even once.
    assert max(finished for _, finished in results) - began < HANG_SECONDS


def test_a_failed_key_fetch_is_remembered(hanging_jwks):
    client = Client()
    assert post_signed_looking_webhook(client)[0] == 401
    assert hanging_jwks.fetches == 1
    began = time.monotonic()
    assert post_signed_looking_webhook(client)[0] == 401
    assert time.monotonic() - began < 0.5  # answered at once, no wait for a fetch
    assert hanging_jwks.fetches == 1  # within the window: no new fetch
