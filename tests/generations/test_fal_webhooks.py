"""fal's webhook: signature verification (keys generated here) and idempotent application."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import urlsplit

import httpx
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from accounts.models import LedgerEntry
from generations import services
from generations.models import FalAccount, Generation
from tests.factories import REQUEST_BODY

JWKS_URL = "https://rest.fal.test/.well-known/jwks.json"
pytestmark = pytest.mark.django_db


def jwk(private_key: Ed25519PrivateKey) -> dict:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": "k1",
        "x": base64.urlsafe_b64encode(raw).decode(),
    }


def signed_headers(key, body: bytes, request_id: str, timestamp: int | None = None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    message = "\n".join(
        [request_id, "fal-user-1", str(timestamp), hashlib.sha256(body).hexdigest()]
    ).encode()
    return {
        "HTTP_X_FAL_WEBHOOK_REQUEST_ID": request_id,
        "HTTP_X_FAL_WEBHOOK_USER_ID": "fal-user-1",
        "HTTP_X_FAL_WEBHOOK_TIMESTAMP": str(timestamp),
        "HTTP_X_FAL_WEBHOOK_SIGNATURE": key.sign(message).hex(),
    }


@pytest.fixture(autouse=True)
def _public_site(settings):
    settings.PUBLIC_BASE_URL = "https://veo.example.com"  # fal is given a webhook URL


@pytest.fixture
def fal_key(settings):
    settings.FAL_WEBHOOK_JWKS_URL = JWKS_URL
    key = Ed25519PrivateKey.generate()
    with respx.mock(assert_all_called=False) as mock:
        mock.get(JWKS_URL).mock(return_value=httpx.Response(200, json={"keys": [jwk(key)]}))
        yield key


@pytest.fixture
def queued(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.status == "queued"
    return generation


def webhook_path(generation) -> str:
    """The path and query of the URL fal is given at submit (token included)."""
    url = urlsplit(services.fal_webhook_url(generation))
    return f"{url.path}?{url.query}"


def post_webhook(client, generation, body: bytes, headers: dict):
    return client.post(
        webhook_path(generation),
        data=body,
        content_type="application/json",
        **headers,
    )


def ok_body(generation) -> bytes:
    return json.dumps(
        {
            "request_id": generation.fal_request_id,
            "gateway_request_id": generation.fal_request_id,
            "status": "OK",
            "payload": {"video": {"url": "simulated:sample.mp4"}},
            "error": None,
        }
    ).encode()


def test_valid_webhook_completes_the_generation_once(
    client, fal_key, queued, django_capture_on_commit_callbacks
):
    body = ok_body(queued)
    headers = signed_headers(fal_key, body, queued.fal_request_id)
    response = post_webhook(client, queued, body, headers)
    assert response.status_code == 200
    queued.refresh_from_db()
    assert queued.status == "succeeded"
    # fal retries deliveries: the duplicate changes nothing.
    assert post_webhook(client, queued, body, headers).status_code == 200
    assert LedgerEntry.objects.filter(generation=queued, kind="capture").count() == 1


def test_error_webhook_fails_and_releases_with_fals_message(client, fal_key, queued):
    body = json.dumps(
        {
            "request_id": queued.fal_request_id,
            "status": "ERROR",
            "error": "Invalid status code: 422",
            "payload": {
                "detail": [
                    {
                        "loc": ["body", "prompt"],
                        "msg": "The content was flagged by a content checker.",
                        "type": "content_policy_violation",
                    }
                ]
            },
        }
    ).encode()
    response = post_webhook(
        client, queued, body, signed_headers(fal_key, body, queued.fal_request_id)
    )
    assert response.status_code == 200
    queued.refresh_from_db()
    assert (queued.status, queued.error_code) == ("failed", "content_policy")
    assert "flagged" in queued.error_message
    assert LedgerEntry.objects.filter(generation=queued, kind="release").count() == 1


def test_webhook_before_the_request_id_was_saved_is_adopted(client, fal_key, user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    Generation.objects.filter(pk=generation.pk).update(status="submitting")
    body = json.dumps(
        {
            "request_id": "req-early",
            "status": "OK",
            "payload": {"video": {"url": "simulated:sample.mp4"}},
        }
    ).encode()
    response = post_webhook(client, generation, body, signed_headers(fal_key, body, "req-early"))
    assert response.status_code == 200
    generation.refresh_from_db()
    assert generation.fal_request_id == "req-early"
    assert generation.status == "succeeded"


@pytest.mark.parametrize(
    "tamper",
    [
        "forged_signature",
        "other_key",
        "body_changed",
        "unsigned",
        "stale",
        "future",
        "not_hex",
    ],
)
def test_bad_webhooks_are_rejected_with_401_and_change_nothing(client, fal_key, queued, tamper):
    body = ok_body(queued)
    headers = signed_headers(fal_key, body, queued.fal_request_id)
    if tamper == "forged_signature":
        headers["HTTP_X_FAL_WEBHOOK_SIGNATURE"] = "00" * 64
    elif tamper == "other_key":
        headers = signed_headers(Ed25519PrivateKey.generate(), body, queued.fal_request_id)
    elif tamper == "body_changed":
        body = body.replace(b"simulated:sample.mp4", b"https://evil.example/x.mp4")
    elif tamper == "unsigned":
        headers = {}
    elif tamper == "stale":
        headers = signed_headers(fal_key, body, queued.fal_request_id, int(time.time()) - 3600)
    elif tamper == "future":
        headers = signed_headers(fal_key, body, queued.fal_request_id, int(time.time()) + 3600)
    elif tamper == "not_hex":
        headers["HTTP_X_FAL_WEBHOOK_SIGNATURE"] = "zz"
    response = post_webhook(client, queued, body, headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    queued.refresh_from_db()
    assert queued.status == "queued"


def test_rotated_key_is_fetched_again(client, settings, queued):
    settings.FAL_WEBHOOK_JWKS_URL = JWKS_URL
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with respx.mock() as mock:
        route = mock.get(JWKS_URL).mock(
            side_effect=[
                httpx.Response(200, json={"keys": [jwk(old)]}),
                httpx.Response(200, json={"keys": [jwk(old), jwk(new)]}),
            ]
        )
        from generations.fal_webhooks import key_cache

        key_cache.keys()
        key_cache._fetched_at -= 120  # the last fetch was over a minute ago
        body = ok_body(queued)
        response = post_webhook(
            client, queued, body, signed_headers(new, body, queued.fal_request_id)
        )
        assert response.status_code == 200
        assert route.call_count == 2


def test_malformed_generation_id_is_400(client, fal_key, queued):
    body = ok_body(queued)
    response = client.post(
        "/webhooks/fal/?generation=not-a-uuid",
        data=body,
        content_type="application/json",
        **signed_headers(fal_key, body, queued.fal_request_id),
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_webhook_of_a_job_whose_submit_had_no_answer_is_adopted_and_not_resent(
    client, fal_key, user
):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    Generation.objects.filter(pk=generation.pk).update(status="submitting", fal_submit_count=1)
    body = json.dumps(
        {
            "request_id": "req-lost",
            "status": "OK",
            "payload": {"video": {"url": "simulated:sample.mp4"}},
        }
    ).encode()
    response = post_webhook(client, generation, body, signed_headers(fal_key, body, "req-lost"))
    assert response.status_code == 200
    services.submit(generation_id=generation.pk)  # the resubmit that was due: nothing to do
    generation.refresh_from_db()
    assert (generation.status, generation.fal_request_id) == ("succeeded", "req-lost")
    assert generation.fal_submit_count == 1


def test_ok_webhook_without_payload_falls_back_to_fetching_the_result(client, fal_key, queued):
    # fal sends `payload: null` and says why in `payload_error` when the output was not
    # valid JSON (fal.md §2): the job may have a video, so ask the result endpoint.
    body = json.dumps(
        {
            "request_id": queued.fal_request_id,
            "gateway_request_id": queued.fal_request_id,
            "status": "OK",
            "payload": None,
            "payload_error": "Output is not JSON serializable",
            "error": None,
        }
    ).encode()
    response = post_webhook(
        client, queued, body, signed_headers(fal_key, body, queued.fal_request_id)
    )
    assert response.status_code == 200
    assert response.json()["outcome"] == "polling"
    queued.refresh_from_db()
    # The immediate poll (tasks run inline here) fetched the result and copied the video.
    assert queued.status == "succeeded"
    assert LedgerEntry.objects.filter(generation=queued, kind="capture").count() == 1
    assert not LedgerEntry.objects.filter(generation=queued, kind="release").exists()


def test_first_verified_webhook_records_the_fal_user_id_once(client, fal_key, queued, caplog):
    body = ok_body(queued)
    headers = signed_headers(fal_key, body, queued.fal_request_id)
    with caplog.at_level("INFO", logger="generations"):
        assert post_webhook(client, queued, body, headers).status_code == 200
        assert post_webhook(client, queued, body, headers).status_code == 200
    assert FalAccount.load().webhook_user_id_seen == "fal-user-1"
    assert caplog.text.count("event=fal_webhook_user_id user_id=fal-user-1") == 1


def test_a_refused_webhook_does_not_record_its_user_id(client, fal_key, queued):
    body = ok_body(queued)
    response = client.post(
        f"/webhooks/fal/?generation={queued.pk}",  # no token
        data=body,
        content_type="application/json",
        **signed_headers(fal_key, body, queued.fal_request_id),
    )
    assert response.status_code == 401
    assert FalAccount.load().webhook_user_id_seen == ""


def test_jwks_with_and_without_padding_both_verify(client, settings, queued):
    settings.FAL_WEBHOOK_JWKS_URL = JWKS_URL
    padded, unpadded = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    unpadded_jwk = {**jwk(unpadded), "x": jwk(unpadded)["x"].rstrip("=")}
    assert jwk(padded)["x"].endswith("=")  # as fal serves it
    with respx.mock() as mock:
        mock.get(JWKS_URL).mock(
            return_value=httpx.Response(200, json={"keys": [jwk(padded), unpadded_jwk]})
        )
        for key in (padded, unpadded):
            body = ok_body(queued)
            headers = signed_headers(key, body, queued.fal_request_id)
            assert post_webhook(client, queued, body, headers).status_code == 200
