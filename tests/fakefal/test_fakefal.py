"""The fake fal server, driven by the real fal_client.SyncClient.

In-process tests reach the fake through the ``fake_fal_factory`` fixture, which patches
``fal_client.client.QUEUE_URL_FORMAT`` (fal_client froze FAL_QUEUE_RUN_HOST at import)
and sets SSL_CERT_FILE before the test creates its SyncClient. One test runs fal_client
in a subprocess to check the plain environment-variable route as well.
"""

from __future__ import annotations

import json
import math
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fal_client
import httpx
import pytest

from tests.fakefal import FakeFal, FakeFalProcess, Job, sign_webhook, verify_webhook
from tests.fakefal.scheduler import COMPLETED, IN_PROGRESS, IN_QUEUE, Scheduler
from tests.fakefal.server import DEFAULT_VIDEO

APP = "fal-ai/veo3.1/image-to-video"
GOOD = {
    "prompt": "a lighthouse at dusk",
    "image_url": "https://example.test/in.jpg",
    "duration": "4s",
    "resolution": "720p",
    "aspect_ratio": "16:9",
    "generate_audio": False,
}

Factory = Callable[..., FakeFal]


@pytest.fixture
def fast(fake_fal_factory: Factory) -> FakeFal:
    return fake_fal_factory(queue_seconds=0.05, run_seconds=0.2, max_concurrent=10)


@pytest.fixture
def client() -> fal_client.SyncClient:
    # Created after the fake fixture has set SSL_CERT_FILE: httpx reads it on creation.
    return fal_client.SyncClient(key="test", default_timeout=5)


def _http(fal: FakeFal) -> httpx.Client:
    return httpx.Client(
        base_url=fal.base_url,
        verify=ssl.create_default_context(cafile=fal.ca_pem_path),
        headers={"Authorization": "Key test"},
        trust_env=False,
    )


class Receiver:
    """A plain-http webhook target that records raw bodies; answers from ``codes``."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.hits: list[tuple[dict[str, str], bytes, float]] = []
        self.codes = list(codes or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                outer.hits.append((dict(self.headers), raw, time.monotonic()))
                code = outer.codes.pop(0) if outer.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/fal"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for _, raw, _ in self.hits]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --------------------------------------------------------------------------- protocol


def test_submit_status_result_and_file(
    fake_fal_factory: Factory,
    client: fal_client.SyncClient,
) -> None:
    fal = fake_fal_factory(queue_seconds=0.3, run_seconds=0.3)
    handle = client.submit(APP, GOOD)
    # Status/result URLs use owner/app only, never the endpoint path.
    assert handle.status_url == f"{fal.base_url}/fal-ai/veo3.1/requests/{handle.request_id}/status"
    assert handle.response_url.endswith(f"/fal-ai/veo3.1/requests/{handle.request_id}")

    seen = []
    while True:
        status = handle.status(with_logs=True)
        seen.append(type(status).__name__)
        if isinstance(status, fal_client.Completed):
            break
        time.sleep(0.03)
    assert seen[0] == "Queued" and "InProgress" in seen and seen[-1] == "Completed"
    assert status.error is None and status.metrics["inference_time"] == pytest.approx(0.3)
    assert [line["message"] for line in status.logs or []][-1] == "Video generated"
    assert client.status(APP, handle.request_id).logs is None  # logs=false -> null

    video = client.result(APP, handle.request_id)["video"]
    assert video["content_type"] == "video/mp4"
    assert video["url"] == f"{fal.base_url}/files/{handle.request_id}.mp4"
    expected = DEFAULT_VIDEO.read_bytes()
    assert video["file_size"] == len(expected)
    with _http(fal) as http:
        assert http.get(video["url"]).content == expected
        head = http.head(video["url"])
        assert head.status_code == 200 and head.headers["content-length"] == str(len(expected))
        part = http.get(video["url"], headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == expected[:10]
        assert http.get(f"{fal.base_url}/files/nope.mp4").status_code == 404


def test_result_before_completion_and_unknown_ids(fake_fal: FakeFal) -> None:
    # The fixture points fal_client (env for subprocesses, module constant in-process).
    assert os.environ["FAL_QUEUE_RUN_HOST"] == fake_fal.host
    assert os.environ["SSL_CERT_FILE"] == fake_fal.ca_pem_path
    assert f"https://{fake_fal.host}/" == fal_client.client.QUEUE_URL_FORMAT
    with _http(fake_fal) as http:
        request_id = http.post(f"/{APP}", json=GOOD).json()["request_id"]
        early = http.get(f"/fal-ai/veo3.1/requests/{request_id}")
        assert early.status_code == 400
        assert early.json() == {"detail": "Request is still in progress"}
        assert http.get("/fal-ai/veo3.1/requests/nope/status").status_code == 404
        assert http.get("/fal-ai/veo3.1/requests/nope").status_code == 404
        # Right id, wrong app: fal scopes ids to owner/app.
        assert http.get(f"/fal-ai/other/requests/{request_id}/status").status_code == 404


def test_queue_positions_with_max_concurrent(
    fake_fal_factory: Factory,
    client: fal_client.SyncClient,
) -> None:
    fake_fal_factory(queue_seconds=0, run_seconds=30, max_concurrent=2)
    handles = [client.submit(APP, GOOD) for _ in range(5)]
    statuses = [h.status() for h in handles]
    assert [type(s).__name__ for s in statuses[:2]] == ["InProgress", "InProgress"]
    assert [s.position for s in statuses[2:]] == [0, 1, 2]  # type: ignore[attr-defined]

    handles[2].cancel()  # leaving the queue moves everyone behind it up
    assert [h.status().position for h in handles[3:]] == [0, 1]  # type: ignore[attr-defined]
    handles[0].cancel()  # a freed slot starts the head of the queue
    assert isinstance(handles[3].status(), fal_client.InProgress)
    assert handles[4].status() == fal_client.Queued(position=0)


def test_invalid_input_is_accepted_then_422_at_result(
    fast: FakeFal, client: fal_client.SyncClient, receiver: Receiver
) -> None:
    bad = {"prompt": "x", "duration": "5s", "resolution": "8k", "generate_audio": "yes"}
    handle = client.submit(APP, bad, webhook_url=receiver.url)  # no error at submit
    _wait(lambda: isinstance(handle.status(), fal_client.Completed))
    status = handle.status()
    assert status.error is None  # model errors are not visible in the status
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        handle.get()
    assert info.value.status_code == 422
    detail = info.value.response.json()["detail"]
    assert {tuple(d["loc"]) for d in detail} == {
        ("body", "image_url"),
        ("body", "duration"),
        ("body", "resolution"),
        ("body", "generate_audio"),
    }
    assert {d["type"] for d in detail} == {"missing", "enum", "bool_type"}
    fast.wait_for_webhooks(1)
    (body,) = receiver.bodies()
    assert body["status"] == "ERROR" and body["error"] == "Invalid status code: 422"
    assert body["payload"] == {"detail": detail}


def test_prompt_markers(fast: FakeFal, client: fal_client.SyncClient) -> None:
    def submit(marker: str) -> fal_client.SyncRequestHandle:
        return client.submit(APP, {**GOOD, "prompt": f"scene {marker}"})

    policy, runner, timeout, never = (
        submit(m)
        for m in ("[fal:content_policy]", "[fal:runner_error]", "[fal:timeout]", "[fal:never]")
    )
    slow = submit("[fal:slow=3]")
    _wait(lambda: isinstance(timeout.status(), fal_client.Completed))

    def result_error(handle: fal_client.SyncRequestHandle) -> fal_client.FalClientHTTPError:
        with pytest.raises(fal_client.FalClientHTTPError) as info:
            handle.get()
        return info.value

    err = result_error(policy)
    assert err.status_code == 422
    assert err.response.json()["detail"][0]["type"] == "content_policy_violation"

    status = runner.status()
    assert (status.error, status.error_type) == ("Runner disconnected", "runner_disconnected")  # type: ignore[attr-defined]
    err = result_error(runner)
    assert (err.status_code, err.error_type) == (503, "runner_disconnected")

    assert timeout.status().error_type == "request_timeout"  # type: ignore[attr-defined]
    err = result_error(timeout)
    assert (err.status_code, err.error_type) == (504, "request_timeout")

    assert isinstance(slow.status(), fal_client.InProgress)  # 3 s > run_seconds
    slow_job = fast.job(slow.request_id)
    assert slow_job is not None and slow_job.run_seconds == 3
    assert isinstance(never.status(), fal_client.InProgress)


def test_cancel(fake_fal_factory: Factory, client: fal_client.SyncClient) -> None:
    fal = fake_fal_factory(queue_seconds=5, run_seconds=1)
    handle = client.submit(APP, GOOD)
    with _http(fal) as http:
        reply = http.put(f"/fal-ai/veo3.1/requests/{handle.request_id}/cancel")
        assert (reply.status_code, reply.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
        again = http.put(f"/fal-ai/veo3.1/requests/{handle.request_id}/cancel")
        assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
        assert http.put("/fal-ai/veo3.1/requests/nope/cancel").status_code == 404
    status = handle.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "client_cancelled"
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        handle.get()
    assert (info.value.status_code, info.value.error_type) == (499, "client_cancelled")
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        handle.cancel()  # fal_client raises on the 400
    assert info.value.status_code == 400


def test_start_timeout_expires_queued_job(
    fake_fal_factory: Factory,
    client: fal_client.SyncClient,
) -> None:
    fake_fal_factory(queue_seconds=0, run_seconds=1, max_concurrent=1)
    client.submit(APP, {**GOOD, "prompt": "[fal:never]"})  # holds the only slot
    handle = client.submit(APP, GOOD, start_timeout=1.1)
    _wait(lambda: isinstance(handle.status(), fal_client.Completed), timeout=3)
    assert handle.status().error_type == "request_timeout"  # type: ignore[attr-defined]
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        handle.get()
    assert info.value.status_code == 504
    assert info.value.response.headers["x-fal-request-timeout-type"] == "user"


def test_auth(fake_fal_factory: Factory) -> None:
    fal = fake_fal_factory(accepted_keys=["id:secret"])
    with _http(fal) as http:
        for header in (None, "Key", "Bearer id:secret", "Key wrong", "garbage"):
            headers = {"Authorization": header} if header is not None else {}
            if header is None:
                http.headers.pop("Authorization", None)
            reply = http.post(f"/{APP}", json=GOOD, headers=headers)
            assert reply.status_code == 401, header
            assert reply.json() == {"detail": "No user found for Key ID and Secret"}
        ok = http.post(f"/{APP}", json=GOOD, headers={"Authorization": "Key id:secret"})
        assert ok.status_code == 200
        assert set(ok.json()) >= {"request_id", "status_url", "queue_position", "status"}
        assert http.get("/.well-known/jwks.json").status_code == 200  # public
    assert fal.counters["auth_failed"] == 5


# --------------------------------------------------------------------------- webhooks


def test_webhook_is_signed_and_verifies_against_jwks(
    fast: FakeFal, client: fal_client.SyncClient, receiver: Receiver
) -> None:
    handle = client.submit(APP, GOOD, webhook_url=receiver.url)
    fast.wait_for_webhooks(1)
    ((headers, raw, _),) = receiver.hits
    with _http(fast) as http:
        jwks = http.get("/.well-known/jwks.json").json()
    assert jwks["keys"][0]["kty"] == "OKP" and jwks["keys"][0]["crv"] == "Ed25519"
    assert verify_webhook(raw, headers, jwks)
    assert not verify_webhook(raw + b" ", headers, jwks)
    assert headers["X-Fal-Webhook-Request-Id"] == handle.request_id
    assert headers["X-Fal-Webhook-User-Id"] == fast.config.user_id
    body = json.loads(raw)
    assert list(body) == sorted(body)  # fal sends sorted keys
    assert body["status"] == "OK" and body["error"] is None
    assert body["request_id"] == body["gateway_request_id"] == handle.request_id
    assert body["payload"]["video"]["url"].endswith(f"/files/{handle.request_id}.mp4")

    # Tests can forge webhooks with the same key; a rotated key stays in the JWKS.
    forged = sign_webhook(fast.webhook_private_key, b"{}", "r1", "u1")
    assert verify_webhook(b"{}", forged, fast.jwks)
    fast.rotate_webhook_key()
    assert len(fast.jwks["keys"]) == 2 and verify_webhook(b"{}", forged, fast.jwks)


def test_jwks_keys_are_padded_like_fals(fast: FakeFal) -> None:
    # fal's live JWKS keeps "=" on the base64url `x` (fal.md §2).
    with _http(fast) as http:
        (key,) = http.get("/.well-known/jwks.json").json()["keys"]
    assert key["x"].endswith("=") and len(key["x"]) == 44


def test_forge_webhook_signs_any_body_for_any_user(fast: FakeFal, receiver: Receiver) -> None:
    body = {"request_id": "theirs", "status": "OK", "payload": None}
    status = fast.forge_webhook(
        receiver.url, body, request_id="signed-id", user_id="another-fal-customer"
    )
    assert status == 200
    ((headers, raw, _),) = receiver.hits
    assert json.loads(raw) == body and list(json.loads(raw)) == sorted(body)
    assert headers["X-Fal-Webhook-Request-Id"] == "signed-id"
    assert headers["X-Fal-Webhook-User-Id"] == "another-fal-customer"
    assert verify_webhook(raw, headers, fast.jwks)  # fal's key, so it verifies
    assert fast.counters["webhooks.forged"] == 1
    # Raw bytes go as given; the user id defaults to the fake's account.
    fast.forge_webhook(receiver.url, b"not json", request_id="r2")
    headers, raw, _ = receiver.hits[1]
    assert raw == b"not json" and headers["X-Fal-Webhook-User-Id"] == fast.config.user_id


def test_webhook_retries_then_gives_up(fake_fal_factory: Factory) -> None:
    fal = fake_fal_factory(
        queue_seconds=0, run_seconds=0.05, webhook_retry_base=0.05, webhook_max_attempts=3
    )
    flaky, dead = Receiver([500, 503]), Receiver([500, 500, 500])
    try:
        with _http(fal) as http:
            http.post(f"/{APP}", params={"fal_webhook": flaky.url}, json=GOOD)
            http.post(f"/{APP}", params={"fal_webhook": dead.url}, json=GOOD)
        _wait(lambda: len(flaky.hits) == 3 and len(dead.hits) == 3)
        time.sleep(0.3)  # no 4th attempt
        assert len(dead.hits) == 3
        counters = fal.counters
        assert counters["webhooks.delivered"] == 1 and counters["webhooks.gave_up"] == 1
        assert counters["webhooks.failed"] == 5 and counters["webhooks.sent"] == 6
    finally:
        flaky.close()
        dead.close()


def test_webhook_faults(fast: FakeFal, client: fal_client.SyncClient, receiver: Receiver) -> None:
    # Early: the webhook arrives before submit() returns.
    fast.fail_next("webhook", "early")
    handle = client.submit(APP, GOOD, webhook_url=receiver.url)
    assert [b["request_id"] for b in receiver.bodies()] == [handle.request_id]
    assert fast.counters["webhooks.early"] == 1

    fast.fail_next("webhook", "duplicate")
    dup = client.submit(APP, GOOD, webhook_url=receiver.url)
    fast.fail_next("webhook", "drop")
    dropped = client.submit(APP, GOOD, webhook_url=receiver.url)
    late = client.submit(
        APP, {**GOOD, "prompt": "[fal:webhook_delay=0.6]"}, webhook_url=receiver.url
    )
    first = client.submit(APP, GOOD, webhook_url=receiver.url)
    _wait(lambda: len(receiver.hits) == 5)
    ids = [b["request_id"] for b in receiver.bodies()]
    assert ids.count(dup.request_id) == 2 and dropped.request_id not in ids
    assert ids.index(first.request_id) < ids.index(late.request_id)  # out of order
    assert isinstance(dropped.status(), fal_client.Completed)  # polling still works


# --------------------------------------------------------------------------- faults


def test_forced_429_on_submit_is_retried(fast: FakeFal, client: fal_client.SyncClient) -> None:
    fast.fail_next("submit", 429, times=3)
    handle = client.submit(APP, GOOD)
    assert handle.request_id
    counters = fast.counters
    assert counters["submit"] == 4 and counters["faults.submit.429"] == 3
    assert counters["jobs_created"] == 1
    assert [r.status for r in fast.requests("submit")] == [429, 429, 429, 200]


def test_nginx_502_is_retried_but_fal_errors_are_not(
    fast: FakeFal, client: fal_client.SyncClient
) -> None:
    handle = client.submit(APP, GOOD)
    fast.fail_next("status", 502, times=2)  # ingress page: retried
    assert handle.status() is not None
    assert fast.counters["status"] == 3
    with _http(fast) as http:
        fast.fail_next("status", 502)
        page = http.get(handle.status_url)
        assert "nginx" in page.text and "x-fal-request-id" not in page.headers

    for code, kwargs in ((500, {}), (502, {"nginx": False})):
        fast.fail_next("status", code, **kwargs)
        with pytest.raises(fal_client.FalClientHTTPError) as info:
            handle.status()
        assert info.value.status_code == code


def test_dropped_or_slow_submit_leaves_duplicate_jobs(
    fast: FakeFal, client: fal_client.SyncClient
) -> None:
    # fal_client retries a submit whose connection died after the job was created...
    fast.fail_next("submit", "drop")
    client.submit(APP, GOOD)
    assert fast.counters["jobs_created"] == 2
    # ...and one whose answer came after its timeout.
    quick = fal_client.SyncClient(key="test", default_timeout=0.3)
    fast.fail_next("submit", "slow", seconds=0.6)
    quick.submit(APP, GOOD)
    assert fast.counters["jobs_created"] == 4
    # A reset before any work is retried without a duplicate.
    fast.fail_next("submit", "reset")
    client.submit(APP, GOOD)
    assert fast.counters["jobs_created"] == 5
    # With start_timeout the client does not retry a timeout: an orphan job remains.
    fast.fail_next("submit", "slow", seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        quick.submit(APP, GOOD, start_timeout=5)
    assert fast.counters["jobs_created"] == 6


def test_random_faults_are_seeded(fake_fal_factory: Factory) -> None:
    def run(seed: int) -> list[int | str | None]:
        fal = fake_fal_factory(seed=seed, faults={"submit": {"500": 0.3, "429": 0.2}})
        with _http(fal) as http:
            for _ in range(30):
                http.post(f"/{APP}", json=GOOD)
        return [r.status for r in fal.requests("submit")]

    first, again = run(7), run(7)
    assert first == again and {200, 429, 500} <= set(first)


def test_outage_and_recovery(fast: FakeFal, client: fal_client.SyncClient) -> None:
    handle = client.submit(APP, GOOD)
    fast.go_down()
    with _http(fast) as http, pytest.raises(httpx.ConnectError):
        http.get(handle.status_url)
    time.sleep(0.3)  # the queue keeps running during the outage
    fast.come_up()
    assert isinstance(handle.status(), fal_client.Completed)


def test_account_lock_refuses_submits_like_fal(
    fast: FakeFal, client: fal_client.SyncClient
) -> None:
    handle = client.submit(APP, GOOD)
    fast.lock_account("Exhausted balance")
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        client.submit(APP, GOOD)
    assert info.value.status_code == 403
    assert info.value.response.json() == {
        "detail": "User is locked. Reason: Exhausted balance. Top up your balance at "
        "fal.ai/dashboard/billing."
    }
    assert fast.counters["jobs_created"] == 1 and fast.counters["submits_refused_locked"] == 1
    _wait(lambda: isinstance(handle.status(), fal_client.Completed))  # polls still answer
    assert handle.get()["video"]["url"]
    fast.unlock_account()
    assert client.submit(APP, GOOD).request_id
    # Other reasons, and the process mode's /_control/config.
    with _http(fast) as http:
        assert http.post("/_control/config", json={"locked_reason": "Admin lock"}).is_success
        refused = http.post(f"/{APP}", json=GOOD)
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("User is locked. Reason: Admin lock.")


def test_answers_fal_client_cannot_read(fast: FakeFal, client: fal_client.SyncClient) -> None:
    handle = client.submit(APP, GOOD)
    fast.fail_next("status", "unknown_status")
    with pytest.raises(ValueError, match="Unknown status: PAUSED"):
        handle.status()
    fast.fail_next("status", "missing_fields")
    with pytest.raises(KeyError):
        handle.status(with_logs=True)
    fast.fail_next("status", "not_json")
    with pytest.raises(json.JSONDecodeError):
        handle.status()
    _wait(lambda: isinstance(handle.status(), fal_client.Completed))
    fast.fail_next("result", "not_json")
    with pytest.raises(json.JSONDecodeError):
        handle.get()
    assert handle.get()["video"]["url"]  # the job itself is fine
    assert fast.counters["faults.status.unknown_status"] == 1


def test_results_expire_with_a_404_like_fals(
    fake_fal_factory: Factory, client: fal_client.SyncClient
) -> None:
    fal = fake_fal_factory(queue_seconds=0, run_seconds=0.05, result_ttl_seconds=0.2)
    handle = client.submit(APP, GOOD)
    _wait(lambda: isinstance(handle.status(), fal_client.Completed))
    assert handle.get()["video"]["url"]  # within the retention window
    time.sleep(0.3)
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        handle.get()
    assert info.value.status_code == 404
    assert info.value.response.json() == {"detail": f"Request {handle.request_id} not found"}
    assert fal.counters["result"] == 2


# --------------------------------------------------------------------------- recording


def test_recording_and_control_endpoints(
    fast: FakeFal, client: fal_client.SyncClient, receiver: Receiver
) -> None:
    client.submit(APP, GOOD, webhook_url=receiver.url)
    handle = client.submit(APP, {**GOOD, "prompt": "other"})
    handle.status()
    (first, _) = fast.requests("submit")
    assert first.method == "POST" and first.path == f"/{APP}"
    assert first.query == {"fal_webhook": receiver.url}
    assert first.headers["Authorization"] == "Key test" and first.body == GOOD
    assert first.headers["User-Agent"].startswith("fal-client/")

    with _http(fast) as http:
        stats = http.get("/_control/stats").json()
        assert stats["counters"]["submit"] == 2 and stats["counters"]["status"] == 1
        assert stats["submits_by_webhook"] == {receiver.url: 1, "": 1}
        assert stats["submits_by_prompt"] == {GOOD["prompt"]: 1, "other": 1}
        recorded = http.get("/_control/requests", params={"kind": "status"}).json()
        assert recorded[0]["request_id"] == handle.request_id
        config = http.post("/_control/config", json={"run_seconds": 9}).json()
        assert config["run_seconds"] == 9 and fast.config.run_seconds == 9
        assert http.post("/_control/config", json={"nope": 1}).status_code == 400
        http.post("/_control/fail_next", json={"target": "submit", "fault": 429})
        assert http.get("/_control/stats").json()["forced_faults"] == {"submit": [{"kind": "429"}]}
        http.post("/_control/reset")
    assert fast.config.run_seconds == 0.2 and fast.counters == {} and fast.jobs() == []


# --------------------------------------------------------------------------- processes


def test_env_vars_route_in_a_subprocess(fast: FakeFal) -> None:
    script = (
        "import fal_client\n"
        "c = fal_client.SyncClient(key='k')\n"
        f"h = c.submit({APP!r}, {GOOD!r})\n"
        "print(h.get()['video']['url'])\n"
    )
    env = {**os.environ, "FAL_QUEUE_RUN_HOST": fast.host, "SSL_CERT_FILE": fast.ca_pem_path}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(f"{fast.base_url}/files/")


def test_standalone_process(tmp_path: Any) -> None:
    state = tmp_path / "state.json"
    with FakeFalProcess(
        "--run-seconds", "0.1", "--queue-seconds", "0", state_file=str(state)
    ) as proc:
        assert proc.host.startswith("127.0.0.1:")
        info = json.loads(state.read_text())
        assert info["host"] == proc.host and info["ca_pem_path"] == proc.ca_pem_path
        proc.control.configure(max_concurrent=5)
        proc.control.fail_next("submit", 429)
        env = {**os.environ, **proc.client_env}
        script = (
            "import fal_client\n"
            f"print(fal_client.SyncClient(key='k').submit({APP!r}, {GOOD!r}).get())"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        stats = proc.control.stats()
        assert (
            stats["counters"]["faults.submit.429"] == 1 and stats["config"]["max_concurrent"] == 5
        )
    final = json.loads(state.read_text())["stats"]
    assert final["counters"]["jobs_created"] == 1


# --------------------------------------------------------------------------- scale


def _job(seq: int, now: float, run: float = 1.0) -> Job:
    return Job(
        request_id=str(seq), seq=seq, owner="o", app="a", endpoint="o/a", input={},
        webhook_url=None, submitted_at=now, eligible_at=now, run_seconds=run, outcome="ok",
    )  # fmt: skip


def test_scheduler_is_deterministic_and_scales() -> None:
    sched = Scheduler(max_concurrent=2)
    jobs = [_job(i, 0.0, run=10.0) for i in range(20_000)]
    started = time.perf_counter()
    for job in jobs:
        sched.submit(job, 0.0)
    for job in jobs[2:1000:7]:
        sched.cancel(job, 1.0)
    positions = [sched.position(j) for j in jobs[5000:6000]]
    finished = sched.advance(35.0)  # 3 rounds of 2 slots
    assert time.perf_counter() - started < 2.0
    assert positions == list(range(positions[0], positions[0] + 1000))
    assert [j.ended_at for j in finished if not j.cancelled][:6] == [10, 10, 20, 20, 30, 30]
    assert sched.running_count == 2 and jobs[0].state == COMPLETED
    assert sched.next_event() == 40.0

    never = Scheduler(max_concurrent=1)
    a, b = _job(0, 0.0, run=math.inf), _job(1, 0.0)
    never.submit(a, 0.0)
    never.submit(b, 0.0)
    never.advance(1e9)
    assert (a.state, b.state) == (IN_PROGRESS, IN_QUEUE) and never.next_event() is None


def test_many_concurrent_clients(fake_fal_factory: Factory) -> None:
    fal = fake_fal_factory(queue_seconds=0, run_seconds=30, max_concurrent=1000)
    client = fal_client.SyncClient(key="test")
    with ThreadPoolExecutor(max_workers=100) as pool:
        handles = list(pool.map(lambda _: client.submit(APP, GOOD), range(300)))
        statuses = list(pool.map(lambda h: h.status(), handles))
    assert all(isinstance(s, fal_client.InProgress) for s in statuses)
    assert fal.counters["jobs_created"] == 300 and fal.counters["submit"] == 300
