from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone
from django_q.models import Schedule

from accounts import tokens
from generations import callbacks, wording
from generations.models import CallbackAttempt, Generation
from generations.serializers import GenerationSerializer
from tests.factories import GenerationFactory


class Receiver:
    """A real HTTP server on 127.0.0.1 that records callbacks and answers with the next
    status in `statuses` (200 once they run out)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                receiver.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length),
                    }
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/veo?src=test"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def finished(user, receiver):
    return GenerationFactory(
        owner=user,
        status="failed",
        error_code="content_policy",
        error_message="Flagged.",
        callback_url=receiver.url,
    )


def _closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/hook"


# --- Signing and delivery --------------------------------------------------------------------


def test_callback_is_signed_and_carries_the_generation_json(finished, user, receiver):
    callbacks.enqueue_callback(generation=finished)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request["path"] == "/hooks/veo?src=test"
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Veo-Event"] == "generation.failed"
    assert callbacks.verify_signature(
        secret=user.webhook_secret, header=headers["X-Veo-Signature"], body=request["body"]
    )
    timestamp, _, digest = headers["X-Veo-Signature"].partition(",v1=")
    assert abs(int(timestamp.removeprefix("t=")) - time.time()) < 30
    assert len(digest) == 64
    body = json.loads(request["body"])
    assert body == json.loads(json.dumps(GenerationSerializer(finished).data, default=str))
    assert body["status"] == "failed"
    assert body["error"] == {
        "code": "content_policy",
        "message": str(wording.FAILURE_REASONS["content_policy"]),
    }

    attempt = CallbackAttempt.objects.get(generation=finished)
    assert (attempt.attempt, attempt.status_code, attempt.succeeded) == (1, 200, True)
    finished.refresh_from_db()
    assert finished.callback_delivered_at is not None


def test_signature_fails_for_another_secret_a_changed_body_or_an_old_timestamp(finished, user):
    body = b'{"id": "x"}'
    header = callbacks.signature_header(secret=user.webhook_secret, body=body)
    assert callbacks.verify_signature(secret=user.webhook_secret, header=header, body=body)
    assert not callbacks.verify_signature(secret="whsec_other", header=header, body=body)
    assert not callbacks.verify_signature(
        secret=user.webhook_secret, header=header, body=body + b" "
    )
    old = callbacks.signature_header(
        secret=user.webhook_secret, body=body, timestamp=int(time.time()) - 600
    )
    assert not callbacks.verify_signature(secret=user.webhook_secret, header=old, body=body)
    assert not callbacks.verify_signature(secret=user.webhook_secret, header="junk", body=body)


def test_callbacks_use_the_rotated_secret(finished, user, receiver):
    old = user.webhook_secret
    new = tokens.rotate_webhook_secret(user)
    callbacks.enqueue_callback(generation=finished)
    header = receiver.requests[0]["headers"]["X-Veo-Signature"]
    body = receiver.requests[0]["body"]
    assert callbacks.verify_signature(secret=new, header=header, body=body)
    assert not callbacks.verify_signature(secret=old, header=header, body=body)


def test_cancel_through_the_api_sends_the_callback(
    api, user, receiver, valid_body, django_capture_on_commit_callbacks
):
    created = api.post(
        "/api/v1/generations/", {**valid_body, "callback_url": receiver.url}, format="json"
    ).json()
    assert created["callback_url"] == receiver.url
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post(f"/api/v1/generations/{created['id']}/cancel/").status_code == 200
    assert len(receiver.requests) == 1
    body = json.loads(receiver.requests[0]["body"])
    assert (body["id"], body["status"]) == (created["id"], "canceled")
    assert receiver.requests[0]["headers"]["X-Veo-Event"] == "generation.canceled"


def test_an_attempt_is_sent_once_even_if_the_task_runs_twice(finished, receiver):
    assert callbacks.deliver_callback(str(finished.pk), 1) == "delivered"
    assert callbacks.deliver_callback(str(finished.pk), 1) == "already_delivered"
    receiver.statuses = [500]
    Generation.objects.filter(pk=finished.pk).update(callback_delivered_at=None)
    assert callbacks.deliver_callback(str(finished.pk), 1) == "duplicate"
    assert len(receiver.requests) == 1


def test_no_callback_for_generations_in_flight_or_without_url(user, receiver):
    in_flight = GenerationFactory(owner=user, status="running", callback_url=receiver.url)
    without = GenerationFactory(owner=user, status="succeeded", callback_url="")
    assert callbacks.deliver_callback(str(in_flight.pk)) == "skipped"
    assert callbacks.deliver_callback(str(without.pk)) == "skipped"
    callbacks.enqueue_callback(generation=without)
    assert receiver.requests == []
    assert not CallbackAttempt.objects.exists()


# --- Retries ---------------------------------------------------------------------------------


def test_a_failed_attempt_is_retried_with_backoff_by_a_schedule(finished, receiver):
    from django_q.brokers import get_broker
    from django_q.scheduler import scheduler

    receiver.statuses = [503]
    before = timezone.now()
    callbacks.enqueue_callback(generation=finished)

    first = CallbackAttempt.objects.get(generation=finished, attempt=1)
    assert (first.status_code, first.succeeded, first.error) == (503, False, "HTTP 503")
    schedule = Schedule.objects.get(name=f"callback:{finished.pk}:2")
    assert schedule.schedule_type == Schedule.ONCE
    assert schedule.func == "generations.callbacks.deliver_callback"
    assert timedelta(seconds=29) < schedule.next_run - before < timedelta(seconds=40)

    # The scheduler fires it when due (tasks run inline in the test settings).
    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now() - timedelta(seconds=1))
    scheduler(broker=get_broker())

    assert len(receiver.requests) == 2
    second = CallbackAttempt.objects.get(generation=finished, attempt=2)
    assert second.succeeded and second.status_code == 200
    finished.refresh_from_db()
    assert finished.callback_delivered_at is not None
    assert not Schedule.objects.filter(name__startswith=f"callback:{finished.pk}:").exists()


def test_backoff_doubles_up_to_an_hour():
    delays = [callbacks.retry_delay(n) for n in range(2, callbacks.MAX_ATTEMPTS + 1)]
    assert delays[:4] == [30, 60, 120, 240]
    assert max(delays) == 3600
    assert sum(delays) > 2 * 3600


def test_network_errors_are_recorded_and_retried(user):
    generation = GenerationFactory(owner=user, status="succeeded", callback_url=_closed_port_url())
    assert callbacks.deliver_callback(str(generation.pk), 1) == "retry_scheduled"
    attempt = CallbackAttempt.objects.get(generation=generation)
    assert attempt.status_code is None and not attempt.succeeded
    assert "ConnectError" in attempt.error
    assert Schedule.objects.filter(name=f"callback:{generation.pk}:2").exists()


def test_redirects_are_not_followed(finished, receiver):
    receiver.statuses = [302]
    assert callbacks.deliver_callback(str(finished.pk), 1) == "retry_scheduled"
    assert len(receiver.requests) == 1
    assert CallbackAttempt.objects.get(generation=finished).status_code == 302


def test_delivery_gives_up_after_the_last_attempt(finished, receiver):
    receiver.statuses = [500]
    last = callbacks.MAX_ATTEMPTS
    assert callbacks.deliver_callback(str(finished.pk), last) == "gave_up"
    assert not Schedule.objects.filter(name__startswith="callback:").exists()
    assert callbacks.deliver_callback(str(finished.pk), last + 1) == "gave_up"
    assert len(receiver.requests) == 1


# --- Server-side request forgery ---------------------------------------------------------------


def test_private_callback_urls_are_refused_at_send_time(finished, receiver, settings):
    settings.PRIVATE_URLS_ALLOWED = False
    assert callbacks.deliver_callback(str(finished.pk), 1) == "gave_up"
    assert receiver.requests == []
    attempt = CallbackAttempt.objects.get(generation=finished)
    assert "public" in attempt.error and not attempt.succeeded
    assert not Schedule.objects.filter(name__startswith="callback:").exists()


def test_a_name_that_resolves_to_a_private_address_is_refused(
    finished, receiver, settings, monkeypatch
):
    """DNS rebinding: the name was public at accept time, now it points inside."""
    settings.PRIVATE_URLS_ALLOWED = False
    Generation.objects.filter(pk=finished.pk).update(callback_url="https://hooks.example.com/cb")

    def rebound(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    assert callbacks.deliver_callback(str(finished.pk), 1) == "gave_up"
    assert "public" in CallbackAttempt.objects.get(generation=finished).error


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://0.0.0.0/x",
        "http://10.0.0.1/x",
        "http://172.16.5.4/x",
        "http://192.168.1.1/x",
        "http://100.64.0.1/x",
        "http://169.254.169.254/x",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://[fc00::1]/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://224.0.0.1/x",
        "http://localhost/x",
        "http://api.localhost/x",
        "gopher://example.com/x",
        "not a url",
    ],
)
def test_check_callback_url_refuses(url, settings):
    settings.PRIVATE_URLS_ALLOWED = False
    with pytest.raises(callbacks.CallbackUrlRefused):
        callbacks.check_callback_url(url, resolve=True)


def test_check_callback_url_pins_public_addresses(settings, monkeypatch):
    settings.PRIVATE_URLS_ALLOWED = False
    assert callbacks.check_callback_url("https://93.184.216.34/x", resolve=True) == [
        "93.184.216.34"
    ]

    def public(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800:220:1::1", port, 0, 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", public)
    assert callbacks.check_callback_url("https://hooks.example.com/x", resolve=True) == [
        "93.184.216.34",
        "2606:2800:220:1::1",
    ]


def test_an_unresolvable_callback_host_is_refused_at_accept(api, valid_body, settings, monkeypatch):
    settings.PRIVATE_URLS_ALLOWED = False

    def fails(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fails)
    response = api.post(
        "/api/v1/generations/",
        {**valid_body, "callback_url": "https://no-such-host.example.com/cb"},
        format="json",
    )
    assert response.status_code == 400
    assert "resolved" in response.json()["error"]["fields"]["callback_url"][0]


# --- Recovery sweep ------------------------------------------------------------------------------


def _age(generation: Generation, minutes: int) -> None:
    """Pretend the generation ended (and its attempts happened) `minutes` ago."""
    past = timezone.now() - timedelta(minutes=minutes)
    Generation.objects.filter(pk=generation.pk).update(created_at=past, completed_at=past)
    CallbackAttempt.objects.filter(generation=generation).update(created_at=past)


def test_sweep_sends_a_callback_whose_task_was_lost(finished, receiver):
    Generation.objects.filter(pk=finished.pk).update(completed_at=timezone.now())
    assert callbacks.sweep_callbacks() == 0  # just ended: its task may still be on its way
    _age(finished, 10)
    assert callbacks.sweep_callbacks() == 1
    assert len(receiver.requests) == 1
    assert CallbackAttempt.objects.get(generation=finished).succeeded
    assert callbacks.sweep_callbacks() == 0


def test_sweep_leaves_scheduled_retries_to_the_scheduler(finished, receiver):
    receiver.statuses = [500]
    callbacks.deliver_callback(str(finished.pk), 1)
    _age(finished, 10)
    assert callbacks.sweep_callbacks() == 0  # callback:<id>:2 is still scheduled
    Schedule.objects.filter(name__startswith="callback:").delete()  # the task got lost
    assert callbacks.sweep_callbacks() == 1
    assert [r.attempt for r in CallbackAttempt.objects.filter(generation=finished)] == [1, 2]
    assert len(receiver.requests) == 2


def test_sweep_ignores_delivered_and_exhausted_callbacks(finished, receiver, user):
    callbacks.deliver_callback(str(finished.pk), 1)
    exhausted = GenerationFactory(owner=user, status="failed", callback_url=receiver.url)
    for n in range(1, callbacks.MAX_ATTEMPTS + 1):
        CallbackAttempt.objects.create(generation=exhausted, attempt=n, url=receiver.url)
    _age(finished, 600)
    _age(exhausted, 600)
    assert callbacks.sweep_callbacks() == 0
    assert len(receiver.requests) == 1
