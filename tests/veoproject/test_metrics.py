"""/metrics: who may read it, that every metric is there, that the state numbers are the
database's, that the event counters move when the event happens (a real call to the fake
fal, a forged webhook, a request), and that a scrape costs a fixed number of queries."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings as django_settings
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import CreditAccount
from generations import services, states
from generations.fal import FalJobFailed, FalRejected, get_gateway
from generations.fal_webhooks import REJECT_REASONS, webhook_token
from generations.models import CallbackAttempt, FalAccount, Generation
from generations.services.settlement import succeed
from generations.states import Status
from tests.factories import REQUEST_BODY, UserFactory
from veoproject.metrics import DatabaseCollector

TOKEN = "metrics-token-for-tests"
REPO = Path(__file__).resolve().parents[2]

EVERY_METRIC = [
    "veo_http_request_duration_seconds",
    "veo_http_responses",
    "veo_fal_calls",
    "veo_fal_call_duration_seconds",
    "veo_fal_webhook_rejects",
    "veo_database_up",
    "veo_generations",
    "veo_generations_waiting",
    "veo_generations_at_fal",
    "veo_generation_oldest_in_flight_seconds",
    "veo_generation_oldest_waiting_seconds",
    "veo_credits_held",
    "veo_credits_captured",
    "veo_credits_released",
    "veo_credits_reserved",
    "veo_credits_balance",
    "veo_callback_attempts",
    "veo_fal_dispatch_paused",
    "veo_fal_credentials_failing",
    "veo_task_queue_depth",
    "veo_task_queue_leased",
]


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOW = []
    return TOKEN


def scrape(client) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.content.decode()


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(text: str, sample_name: str, **labels: str) -> float:
    """One sample's value; 0 when the labelled child does not exist yet."""
    return _samples(text).get((sample_name, frozenset(labels.items())), 0.0)


@functools.lru_cache(maxsize=4)
def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    """A scrape's samples by name and labels, parsed once: late in a test session the
    process's own registry holds every view's and status's series, and parsing it again
    for each of a dozen values took seconds per test."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# --- Who may read it --------------------------------------------------------------------------


def test_not_served_when_neither_token_nor_addresses_are_set(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW = []
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert b"veo_" not in response.content


@pytest.mark.django_db
def test_the_bearer_token_reads_the_metrics(client, metrics_token):
    assert "veo_generations" in scrape(client)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ", TOKEN],
)
def test_a_missing_or_wrong_token_is_refused_without_the_metrics(
    client, metrics_token, authorization
):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"
    assert b"veo_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("allow", "remote", "status"),
    [
        (["127.0.0.1"], "127.0.0.1", 200),
        (["10.0.0.0/8", "192.0.2.7"], "192.0.2.7", 200),
        (["10.0.0.0/8"], "10.20.30.40", 200),
        (["10.0.0.0/8"], "127.0.0.1", 404),
        (["::1"], "::1", 200),
        (["2001:db8:1::/48"], "2001:db8:1:2::99", 200),
        (["2001:db8:1::/48"], "2001:db8:2::1", 404),
    ],
)
def test_addresses_in_metrics_allow_read_without_a_token(client, settings, allow, remote, status):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW = allow
    response = client.get("/metrics", REMOTE_ADDR=remote)
    assert response.status_code == status
    assert (b"veo_generations" in response.content) == (status == 200)


def test_a_forged_forwarded_for_opens_nothing(client, settings):
    """Without trusted proxies X-Forwarded-For is the client's own words."""
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW = ["10.0.0.0/8"]
    settings.TRUSTED_PROXY_COUNT = 0
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.1.2.3")
    assert response.status_code == 404
    assert b"veo_" not in response.content


@pytest.mark.django_db
def test_behind_a_proxy_the_client_counts_not_the_proxy(client, settings):
    """Every request arrives from the proxy's address: allowing it must not open /metrics
    to the whole internet; the client the proxy saw is the one that counts."""
    settings.METRICS_TOKEN = ""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.METRICS_ALLOW = ["127.0.0.1"]
    through_proxy = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.7"}
    assert client.get("/metrics", **through_proxy).status_code == 404
    settings.METRICS_ALLOW = ["198.51.100.0/24"]
    assert client.get("/metrics", **through_proxy).status_code == 200


@pytest.mark.django_db
def test_a_wrong_token_from_an_allowed_address_still_reads(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOW = ["127.0.0.1"]
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", REMOTE_ADDR="192.0.2.1")
    assert response.status_code == 401


def test_metrics_allow_must_hold_addresses():
    env = {**os.environ, "DEBUG": "1", "METRICS_ALLOW": "10.0.0.0/8,not-an-address"}
    result = subprocess.run(
        [sys.executable, "-c", "import veoproject.settings"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOW: 'not-an-address'" in result.stderr


# --- Every metric, with the database's numbers ------------------------------------------------


@pytest.mark.django_db
def test_every_metric_is_listed(client, metrics_token):
    listed = families(scrape(client))
    assert set(EVERY_METRIC) <= set(listed)


def accepted(user) -> Generation:
    return services.accept(user=user, params=REQUEST_BODY).generation


@pytest.mark.pg
@pytest.mark.django_db
def test_state_metrics_are_the_database_numbers(client, metrics_token):
    user = UserFactory(credits=100_000)
    pending = accepted(user)
    submitting = accepted(user)
    states.transition(submitting.pk, to=Status.SUBMITTING)
    queued = accepted(user)
    states.transition(queued.pk, to=Status.QUEUED, fal_request_id="req-queued")
    running = accepted(user)
    states.transition(running.pk, to=Status.QUEUED, fal_request_id="req-running")
    states.transition(running.pk, to=Status.RUNNING)
    succeeded = accepted(user)
    assert succeed(generation=succeeded, video_name="videos/x.mp4", video_bytes=10)
    failed = accepted(user)
    assert services.fail(generation_id=failed.pk, code="upstream_error", message="It failed.")
    services.cancel(generation=accepted(user))
    # In our own queue for one of fal's slots (FAL_MAX_CONCURRENCY, generations.fair_share).
    waiting = accepted(user)
    Generation.objects.filter(pk=waiting.pk).update(status=Status.WAITING)
    cost = pending.cost_credits
    Generation.objects.filter(pk=queued.pk).update(
        created_at=timezone.now() - timedelta(seconds=900)
    )
    Generation.objects.filter(pk=pending.pk).update(
        created_at=timezone.now() - timedelta(seconds=300)
    )
    CallbackAttempt.objects.create(
        generation=succeeded, attempt=1, url="https://x.example/", status_code=500
    )
    CallbackAttempt.objects.create(
        generation=succeeded, attempt=2, url="https://x.example/", error="timeout"
    )
    CallbackAttempt.objects.create(
        generation=succeeded, attempt=3, url="https://x.example/", status_code=200, succeeded=True
    )
    CallbackAttempt.objects.create(
        generation=failed, attempt=1, url="https://x.example/"
    )  # under way
    FalAccount.objects.update_or_create(
        pk=1, defaults={"dispatch_paused": True, "pause_reason": "staff"}
    )
    broker = get_broker()
    broker.enqueue("a task")
    broker.enqueue("another task")
    OrmQ.objects.create(
        key=Conf.CLUSTER_NAME, payload="taken", lock=timezone.now() + timedelta(seconds=60)
    )

    text = scrape(client)

    for status in Status:
        assert value(text, "veo_generations", status=status.value) == 1, status
    assert value(text, "veo_generations_waiting") == 3
    assert value(text, "veo_generations_at_fal") == 2
    assert 899 <= value(text, "veo_generation_oldest_in_flight_seconds") < 960
    assert 299 <= value(text, "veo_generation_oldest_waiting_seconds") < 360
    assert value(text, "veo_credits_held_total") == 8 * cost
    assert value(text, "veo_credits_captured_total") == cost
    assert value(text, "veo_credits_released_total") == 2 * cost
    assert value(text, "veo_credits_reserved") == 5 * cost
    account = CreditAccount.objects.get(user=user)
    assert (account.balance, account.reserved) == (100_000 - cost, 5 * cost)
    assert value(text, "veo_credits_balance") == account.balance
    assert value(text, "veo_callback_attempts_total", outcome="failed") == 2
    assert value(text, "veo_callback_attempts_total", outcome="delivered") == 1
    assert value(text, "veo_fal_dispatch_paused") == 1
    assert value(text, "veo_fal_credentials_failing") == 0
    assert value(text, "veo_task_queue_depth") == 2
    assert value(text, "veo_task_queue_leased") == 1
    assert value(text, "veo_database_up") == 1


@pytest.mark.pg
@pytest.mark.django_db
def test_a_scrape_costs_a_fixed_number_of_queries(client, metrics_token, django_assert_num_queries):
    user = UserFactory(credits=100_000)
    with django_assert_num_queries(DatabaseCollector.QUERIES):
        list(DatabaseCollector().collect())
    for _ in range(5):
        generation = accepted(user)
        CallbackAttempt.objects.create(generation=generation, attempt=1, url="https://x.example/")
    get_broker().enqueue("a task")
    with django_assert_num_queries(DatabaseCollector.QUERIES):
        list(DatabaseCollector().collect())
    with django_assert_num_queries(DatabaseCollector.QUERIES):
        scrape(client)


# --- Events ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_fal_calls_are_counted_by_kind_and_outcome(client, metrics_token, real_fal):
    fake = real_fal(queue_seconds=0, run_seconds=0.2)
    before = scrape(client)
    gateway = get_gateway()

    submitted = gateway.submit(arguments=dict(REQUEST_BODY))
    gateway.status(request_id=submitted.request_id)
    with pytest.raises(FalRejected):
        gateway.status(request_id="no-such-request")

    after = scrape(client)
    assert fake.requests("submit")  # the call did reach the fake fal
    for kind, outcome, calls in (
        ("submit", "ok", 1),
        ("status", "ok", 1),
        ("status", "rejected", 1),
    ):
        labels = {"kind": kind, "outcome": outcome, "backend": "fal"}
        moved = value(after, "veo_fal_calls_total", **labels) - value(
            before, "veo_fal_calls_total", **labels
        )
        assert moved == calls, (kind, outcome)
    timed = value(
        after, "veo_fal_call_duration_seconds_count", kind="status", backend="fal"
    ) - value(before, "veo_fal_call_duration_seconds_count", kind="status", backend="fal")
    assert timed == 2


@pytest.mark.django_db
def test_calls_to_the_simulated_backend_are_counted_as_simulated(client, metrics_token, settings):
    settings.FAL_SIMULATED = True
    settings.FAL_KEY = ""
    before = scrape(client)
    gateway = get_gateway()
    assert type(gateway).__name__ == "SimulatedGateway"

    submitted = gateway.submit(arguments=dict(REQUEST_BODY))
    gateway.status(request_id=submitted.request_id)
    gateway.cancel(request_id=submitted.request_id)
    with pytest.raises(FalJobFailed):
        gateway.status(request_id="not-a-simulated-request")

    after = scrape(client)

    def moved(kind: str, outcome: str, backend: str) -> float:
        labels = {"kind": kind, "outcome": outcome, "backend": backend}
        return value(after, "veo_fal_calls_total", **labels) - value(
            before, "veo_fal_calls_total", **labels
        )

    assert moved("submit", "ok", "simulated") == 1
    assert moved("status", "ok", "simulated") == 1
    assert moved("cancel", "ok", "simulated") == 1
    assert moved("status", "job_failed", "simulated") == 1
    assert moved("submit", "ok", "fal") == 0  # never counted as a call to fal


JWKS_URL = "https://rest.fal.test/.well-known/jwks.json"
JWKS_DOWN_URL = "https://down.fal.test/.well-known/jwks.json"
# What the sender is told, per refusal: as coarse as before the reasons were split.
PUBLIC_ANSWER = {
    "missing_token": (401, "invalid_webhook"),
    "bad_token": (401, "invalid_webhook"),
    "missing_headers": (401, "invalid_signature"),
    "bad_signature": (401, "invalid_signature"),
    "bad_timestamp": (401, "invalid_signature"),
    "stale_timestamp": (401, "invalid_signature"),
    "keys_unavailable": (401, "invalid_signature"),
    "wrong_user": (401, "invalid_webhook"),
    "not_this_job": (401, "invalid_webhook"),
    "bad_generation": (400, "invalid"),
    "bad_body": (400, "invalid"),
    "too_large": (413, "too_large"),
}


def test_every_reject_reason_has_its_public_answer():
    assert set(PUBLIC_ANSWER) == set(REJECT_REASONS)


@pytest.fixture
def signing_key(settings):
    """fal's JWKS (one key made here) at FAL_WEBHOOK_JWKS_URL; a 503 at the other URL."""
    settings.FAL_WEBHOOK_JWKS_URL = JWKS_URL
    settings.FAL_WEBHOOK_USER_ID = "fal-user-1"
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).decode()}
    with respx.mock(assert_all_called=False) as mock:
        mock.get(JWKS_URL).mock(return_value=httpx.Response(200, json={"keys": [jwk]}))
        mock.get(JWKS_DOWN_URL).mock(return_value=httpx.Response(503))
        yield key


def fal_signed(key, body: bytes, request_id: str, *, user_id="fal-user-1", at=None) -> dict:
    timestamp = str(int(time.time()) if at is None else at)
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()])
    return {
        "HTTP_X_FAL_WEBHOOK_REQUEST_ID": request_id,
        "HTTP_X_FAL_WEBHOOK_USER_ID": user_id,
        "HTTP_X_FAL_WEBHOOK_TIMESTAMP": timestamp,
        "HTTP_X_FAL_WEBHOOK_SIGNATURE": key.sign(message.encode()).hex(),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("reason", sorted(PUBLIC_ANSWER))
def test_rejected_webhooks_are_counted_by_the_check_that_failed(
    client, metrics_token, signing_key, settings, user, reason, caplog
):
    """Each forgery moves its own reason in the metric, and only that one; the sender gets
    the same coarse answer as ever, and nothing moves on the generation."""
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    Generation.objects.filter(pk=generation.pk).update(status="queued", fal_request_id="job-1")
    job = "job-1"
    body = json.dumps({"request_id": job, "status": "OK", "payload": None}).encode()
    query = {"generation": str(generation.pk), "token": webhook_token(generation.pk)}
    headers = fal_signed(signing_key, body, job)
    extra: dict[str, str] = {}
    if reason == "missing_token":
        del query["token"]
    elif reason == "bad_token":
        query["token"] = webhook_token(uuid.uuid4())
    elif reason == "missing_headers":
        del headers["HTTP_X_FAL_WEBHOOK_TIMESTAMP"]
    elif reason == "bad_signature":
        headers = fal_signed(Ed25519PrivateKey.generate(), body, job)
    elif reason == "bad_timestamp":
        headers["HTTP_X_FAL_WEBHOOK_TIMESTAMP"] = "yesterday"
    elif reason == "stale_timestamp":
        headers = fal_signed(signing_key, body, job, at=int(time.time()) - 3600)
    elif reason == "keys_unavailable":
        settings.FAL_WEBHOOK_JWKS_URL = JWKS_DOWN_URL
    elif reason == "wrong_user":
        headers = fal_signed(signing_key, body, job, user_id="another-fal-customer")
    elif reason == "not_this_job":
        body = body.replace(b"job-1", b"job-2")
        headers = fal_signed(signing_key, body, "job-2")
    elif reason == "bad_generation":
        query["generation"] = str(generation.pk)[:8]
    elif reason == "bad_body":
        body = b"[1, 2]"
        headers = fal_signed(signing_key, body, job)
    elif reason == "too_large":
        extra["CONTENT_LENGTH"] = str(2 * 1024 * 1024)
    before = scrape(client)

    response = client.post(
        f"/webhooks/fal/?{urlencode(query)}",
        data=body,
        content_type="application/json",
        **headers,
        **extra,
    )

    after = scrape(client)
    status, code = PUBLIC_ANSWER[reason]
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    if reason != code:  # which check failed stays with us
        assert reason not in response.content.decode()
    for label in REJECT_REASONS:
        moved = value(after, "veo_fal_webhook_rejects_total", reason=label) - value(
            before, "veo_fal_webhook_rejects_total", reason=label
        )
        assert moved == (1 if label == reason else 0), label
    if status == 401:  # staff keep the raw cause
        assert f"check={reason}" in caplog.text
    generation.refresh_from_db()
    assert (generation.status, generation.fal_request_id) == ("queued", "job-1")


@pytest.mark.django_db
def test_http_latency_is_labelled_by_url_name_never_by_path(client, metrics_token, user):
    before = scrape(client)
    client.get("/healthz")
    client.get("/healthz")
    client.get(f"/no/such/page/{uuid.uuid4()}")
    client.force_login(user)
    detail = f"/api/v1/generations/{uuid.uuid4()}/"
    assert client.get(detail).status_code == 404
    after = scrape(client)

    def moved(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert moved("veo_http_request_duration_seconds_count", view="healthz", method="GET") == 2
    assert moved("veo_http_request_duration_seconds_count", view="unmatched", method="GET") == 1
    assert moved("veo_http_responses_total", view="unmatched", method="GET", status="404") == 1
    assert (
        moved("veo_http_responses_total", view="api-generation-detail", method="GET", status="404")
        == 1
    )
    assert "/no/such/page" not in after and detail not in after
    assert "_created" not in after  # one series per counter, as in multiprocess mode


@pytest.mark.django_db
def test_multiprocess_mode_adds_up_every_process(client, metrics_token, tmp_path, monkeypatch):
    """With PROMETHEUS_MULTIPROC_DIR, each process (gunicorn workers, qcluster workers)
    writes its counters there; a scrape in any process adds them all up."""
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "veoproject.settings_test",
    }
    script = (
        "import django; django.setup(); from veoproject import metrics; "
        "metrics.webhook_rejected(reason='invalid_signature')"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, timeout=60)
    assert list(tmp_path.glob("counter_*.db"))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    text = scrape(client)

    assert value(text, "veo_fal_webhook_rejects_total", reason="invalid_signature") == 2
    assert "veo_database_up" in text  # the database part is there too


def test_settings_put_the_timing_middleware_first():
    assert django_settings.MIDDLEWARE[0] == "veoproject.metrics.RequestMetricsMiddleware"
