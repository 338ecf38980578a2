"""Verifying fal's webhooks: ED25519 signatures against fal's published JWKS.

The signed message is ``request_id \\n user_id \\n timestamp \\n sha256_hex(raw body)``; a
webhook is accepted when any key of the JWKS verifies it and its timestamp is within the
tolerance (replays of old deliveries are refused). The JWKS is cached for a day and fetched
again, at most once a minute, when a signature matches none of the cached keys (rotation).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Mapping

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

logger = logging.getLogger(__name__)

JWKS_MAX_AGE = 24 * 3600
JWKS_MIN_REFETCH = 60

HEADER_REQUEST_ID = "X-Fal-Webhook-Request-Id"
HEADER_USER_ID = "X-Fal-Webhook-User-Id"
HEADER_TIMESTAMP = "X-Fal-Webhook-Timestamp"
HEADER_SIGNATURE = "X-Fal-Webhook-Signature"


class WebhookRejected(Exception):
    pass


class _KeyCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = 0.0
        self._url = ""

    def keys(self, *, refresh: bool = False) -> list[Ed25519PublicKey]:
        url = settings.FAL_WEBHOOK_JWKS_URL
        with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = url != self._url or not self._keys or age > JWKS_MAX_AGE
            if stale or (refresh and age > JWKS_MIN_REFETCH):
                self._keys = _fetch_jwks(url)
                self._fetched_at = time.monotonic()
                self._url = url
            return list(self._keys)

    def clear(self) -> None:
        with self._lock:
            self._keys, self._fetched_at, self._url = [], 0.0, ""


def _b64url(value: str) -> bytes:
    value = value.strip().rstrip("=")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _fetch_jwks(url: str) -> list[Ed25519PublicKey]:
    try:
        response = httpx.get(url, timeout=10.0)
        response.raise_for_status()
        entries = response.json().get("keys", [])
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        logger.error("event=fal_jwks_unavailable url=%s reason=%r", url, exc)
        raise WebhookRejected("fal's signing keys are unavailable") from exc
    keys = []
    for entry in entries:
        if entry.get("kty") == "OKP" and entry.get("crv") == "Ed25519" and entry.get("x"):
            try:
                keys.append(Ed25519PublicKey.from_public_bytes(_b64url(entry["x"])))
            except ValueError:
                logger.warning("event=fal_jwks_bad_key kid=%s", entry.get("kid"))
    return keys


key_cache = _KeyCache()


def _verifies(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
            return True
        except InvalidSignature:
            continue
    return False


def verify_webhook(*, body: bytes, headers: Mapping[str, str], now: float | None = None) -> None:
    """Raise WebhookRejected unless fal signed this exact body recently."""
    try:
        request_id = headers[HEADER_REQUEST_ID]
        user_id = headers[HEADER_USER_ID]
        timestamp = headers[HEADER_TIMESTAMP]
        signature = bytes.fromhex(headers[HEADER_SIGNATURE])
    except KeyError as exc:
        raise WebhookRejected(f"missing header {exc.args[0]}") from None
    except ValueError:
        raise WebhookRejected("the signature is not hex") from None
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        raise WebhookRejected("the timestamp is not a number") from None
    if age > settings.FAL_WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookRejected("the timestamp is outside the tolerance")
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
    if _verifies(key_cache.keys(), signature, message):
        return
    if _verifies(key_cache.keys(refresh=True), signature, message):
        return
    raise WebhookRejected("the signature does not verify")
