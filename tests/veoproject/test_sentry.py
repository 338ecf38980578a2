"""SENTRY_DSN: set, the settings start sentry-sdk with its Django integration and an
unhandled exception in a view reaches Sentry (a local HTTP server on 127.0.0.1 stands in
for it: sentry-sdk's own transport, no network); unset, nothing is initialised."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sentry_sdk

REPO = Path(__file__).resolve().parents[2]

# A child process (sentry-sdk's init is process-wide): the settings initialise Sentry, then
# a view of our own raises through Django's WSGI handler, as under gunicorn.
RAISE_IN_A_VIEW = """
import sys, types
import django
django.setup()
import sentry_sdk
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from django.test.utils import setup_test_environment
from django.urls import path
from sentry_sdk.integrations.django import DjangoIntegration
from wsgiref.util import setup_testing_defaults

def broken(request):
    raise RuntimeError(sys.argv[1])

urls = types.ModuleType("sentry_test_urls")
urls.urlpatterns = [path("broken/", broken)]
sys.modules["sentry_test_urls"] = urls
setup_test_environment()
client = sentry_sdk.get_client()
assert client.is_active(), "sentry-sdk was not initialised"
assert client.get_integration(DjangoIntegration) is not None, "no Django integration"
environ = {}
setup_testing_defaults(environ)
environ.update(PATH_INFO="/broken/", HTTP_HOST="testserver", HTTP_COOKIE="favourite=s3cret")
statuses = []
with override_settings(ROOT_URLCONF="sentry_test_urls"):
    b"".join(get_wsgi_application()(environ, lambda status, headers, *exc: statuses.append(status)))
assert statuses[0].startswith("500"), statuses
sentry_sdk.flush(timeout=10)
"""


class Receiver(ThreadingHTTPServer):
    envelopes: list[tuple[str, bytes]]


class EnvelopeHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # only when sentry-sdk chose it, i.e. brotli is installed

            body = brotli.decompress(body)
        self.server.envelopes.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), EnvelopeHandler)
    server.envelopes = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def events(envelopes: list[tuple[str, bytes]]) -> list[dict]:
    """The event items of sentry envelopes (newline-separated JSON: header, then item
    header and payload pairs)."""
    found = []
    for _path, body in envelopes:
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                found.append(json.loads(payload))
    return found


def test_sentry_dsn_reports_an_unhandled_exception_with_the_django_integration(sentry_server):
    marker = f"sentry-test-{uuid.uuid4()}"
    port = sentry_server.server_address[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    env.update(
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="veoproject.settings_test",
        SENTRY_DSN=f"http://publickey@127.0.0.1:{port}/42",
    )
    result = subprocess.run(
        [sys.executable, "-c", RAISE_IN_A_VIEW, marker],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    assert sentry_server.envelopes, "nothing reached the Sentry server"
    assert all(path == "/api/42/envelope/" for path, _ in sentry_server.envelopes)
    reported = [
        event
        for event in events(sentry_server.envelopes)
        if any(v.get("value") == marker for v in event.get("exception", {}).get("values", []))
    ]
    assert reported, "the view's exception was not reported"
    event = reported[0]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["exception"]["values"][-1]["mechanism"]["type"] == "django"
    assert event["request"]["url"].endswith("/broken/")
    assert "django" in {i.lower() for i in event["sdk"]["integrations"]}
    # send_default_pii is off: no cookies in the report.
    assert "s3cret" not in json.dumps(event)


def test_without_sentry_dsn_nothing_is_initialised(settings):
    assert not settings.SENTRY_DSN
    assert not sentry_sdk.get_client().is_active()
