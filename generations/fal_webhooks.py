"""Verifying fal's webhooks: who sent them (fal's signature) and what they are about (ours).

A valid signature only proves that fal sent a webhook: fal signs every customer's webhooks
with the same JWKS, so a fal user can point a webhook of their own job at our URL. The
webhook URL we give fal therefore carries a per-generation token (an HMAC of the generation
id under a key derived from SECRET_KEY), and the signed request id must be the body's and,
once known, the generation's (`services.apply_webhook` checks that part).

The signed message is ``request_id \\n user_id \\n timestamp \\n sha256_hex(raw body)``; a
webhook is accepted when any key of the JWKS verifies it and its timestamp is within the
tolerance (replays of old deliveries are refused). With FAL_WEBHOOK_USER_ID set, only that
fal user's webhooks are accepted.

The JWKS is cached for a day and fetched again, at most once a minute, when a signature
matches none of the cached keys (rotation). A fetch never holds other requests: at most one
is in flight per process (the others use the keys at hand, or are refused at once when there
are none), it has a short total deadline (FAL_JWKS_TIMEOUT), and a failure is remembered
for JWKS_FAILURE_TTL, during which webhooks are answered at once without another fetch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

logger = logging.getLogger(__name__)

JWKS_MAX_AGE = 24 * 3600
JWKS_MIN_REFETCH = 60
JWKS_FAILURE_TTL = 30  # seconds a failed fetch is remembered (webhooks refused meanwhile)
JWKS_MAX_BYTES = 64 * 1024

HEADER_REQUEST_ID = "X-Fal-Webhook-Request-Id"
HEADER_USER_ID = "X-Fal-Webhook-User-Id"
HEADER_TIMESTAMP = "X-Fal-Webhook-Timestamp"
HEADER_SIGNATURE = "X-Fal-Webhook-Signature"

TOKEN_SALT = "generations.fal-webhook-token"


class WebhookRejected(Exception):
    """A webhook we refuse (401). `code` and `public_message` are all the sender is told
    (two coarse answers: telling which check failed would help a forger); the message is
    the raw cause, for the staff log; `reason` names the check that failed, one of
    `REJECT_REASONS`, for the `veo_fal_webhook_rejects_total` metric."""

    code = "invalid_signature"
    public_message = "The webhook signature is not valid."
    reason = "bad_signature"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class WebhookNotOurs(WebhookRejected):
    """Validly signed perhaps, but not about this generation's job on our account. Raised
    without a reason (by `services.apply_webhook`): the signed request id is not the body's,
    or not the generation's job."""

    code = "invalid_webhook"
    public_message = "The webhook does not belong to this generation."
    reason = "not_this_job"


# Every reason a webhook is refused for, by the check that refused it (a fixed set: metric
# labels). 401: the URL's token (missing_token, bad_token); fal's signature (missing_headers,
# bad_signature, bad_timestamp, stale_timestamp: outside FAL_WEBHOOK_TOLERANCE_SECONDS, a
# replay; keys_unavailable: fal's JWKS could not be had); our fal user (wrong_user: not
# FAL_WEBHOOK_USER_ID); our job (not_this_job). 400/413, before any check:
# bad_generation (?generation= is no id), bad_body (not a JSON object), too_large.
REJECT_REASONS = (
    "missing_token",
    "bad_token",
    "missing_headers",
    "bad_signature",
    "bad_timestamp",
    "stale_timestamp",
    "keys_unavailable",
    "wrong_user",
    "not_this_job",
    "bad_generation",
    "bad_body",
    "too_large",
)


@dataclass(frozen=True)
class SignedWebhook:
    """What fal's signature vouches for, besides the body."""

    request_id: str
    user_id: str


# ------------------------------------------------------------------ the URL token


def webhook_token(generation_id: UUID | str) -> str:
    """The token the webhook URL of this generation carries (hex HMAC-SHA256)."""
    return _token(str(generation_id), settings.SECRET_KEY)


def _token(generation_id: str, secret: str) -> str:
    return salted_hmac(TOKEN_SALT, generation_id, secret=secret, algorithm="sha256").hexdigest()


def check_webhook_token(generation_id: UUID | str, token: str) -> None:
    """Raise WebhookNotOurs unless `token` is this generation's (constant-time). Tokens made
    under a SECRET_KEY_FALLBACKS key still count: jobs in flight survive a key rotation."""
    if token:
        for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
            if constant_time_compare(_token(str(generation_id), secret), token):
                return
    if token:
        raise WebhookNotOurs("no valid token for this generation", reason="bad_token")
    raise WebhookNotOurs("no token", reason="missing_token")


# ------------------------------------------------------------------ fal's keys


class _KeyCache:
    """fal's public keys, shared by the threads of one process.

    `_state_lock` guards the cached fields only and is never held across network I/O;
    `_fetch_lock` is only ever taken without blocking, so at most one fetch is in flight
    and nobody waits for it.
    """

    def __init__(self) -> None:
        self._state_lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = 0.0
        self._url = ""
        self._failed_at: float | None = None
        self._failed_url = ""

    def keys(self, *, refresh: bool = False) -> list[Ed25519PublicKey]:
        """The current keys; fetched first when missing, over a day old, or (`refresh`)
        when a signature matched none and the last fetch is over a minute old. Raise
        WebhookRejected when there are no keys and none can be had at once."""
        url = settings.FAL_WEBHOOK_JWKS_URL
        now = time.monotonic()
        with self._state_lock:
            keys = list(self._keys) if self._url == url else []
            age = now - self._fetched_at
            failed_recently = (
                self._failed_url == url
                and self._failed_at is not None
                and now - self._failed_at < JWKS_FAILURE_TTL
            )
        wanted = not keys or age > JWKS_MAX_AGE or (refresh and age > JWKS_MIN_REFETCH)
        if wanted and not failed_recently and self._fetch_lock.acquire(blocking=False):
            try:
                keys = self._fetch(url) or keys
            finally:
                self._fetch_lock.release()
        if not keys:
            raise WebhookRejected("fal's signing keys are unavailable", reason="keys_unavailable")
        return keys

    def _fetch(self, url: str) -> list[Ed25519PublicKey]:
        """Fetch and install the keys; on failure remember it and return []. A day-old key
        set stays in use until a fetch succeeds: fal rotates rarely, and refusing every
        webhook meanwhile would only leave generations to the slower polls."""
        try:
            fetched = _fetch_jwks(url)
        except WebhookRejected:
            with self._state_lock:
                self._failed_at, self._failed_url = time.monotonic(), url
            return []
        with self._state_lock:
            self._keys, self._fetched_at, self._url = fetched, time.monotonic(), url
            self._failed_at, self._failed_url = None, ""
        return list(fetched)

    def clear(self) -> None:
        with self._state_lock:
            self._keys, self._fetched_at, self._url = [], 0.0, ""
            self._failed_at, self._failed_url = None, ""


def _b64url(value: str) -> bytes:
    value = value.strip().rstrip("=")  # fal's live JWKS pads `x` with "="
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _download(url: str, timeout: float) -> bytes:
    """GET with a deadline on the whole exchange (httpx's timeouts are per read)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    with httpx.stream("GET", url, timeout=timeout) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > JWKS_MAX_BYTES:
                raise ValueError("the JWKS is too large")
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the JWKS took too long")
            chunks.append(chunk)
    return b"".join(chunks)


def _fetch_jwks(url: str) -> list[Ed25519PublicKey]:
    try:
        document = json.loads(_download(url, settings.FAL_JWKS_TIMEOUT))
        entries = document.get("keys", [])
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError, AttributeError) as exc:
        logger.error("event=fal_jwks_unavailable url=%s reason=%r", url, exc)
        raise WebhookRejected(
            "fal's signing keys are unavailable", reason="keys_unavailable"
        ) from exc
    keys = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("kty") == "OKP" and entry.get("crv") == "Ed25519" and entry.get("x"):
            try:
                keys.append(Ed25519PublicKey.from_public_bytes(_b64url(str(entry["x"]))))
            except ValueError:
                logger.warning("event=fal_jwks_bad_key kid=%s", entry.get("kid"))
    if not keys:
        logger.error("event=fal_jwks_unavailable url=%s reason=no_usable_keys", url)
        raise WebhookRejected("fal's JWKS holds no usable key", reason="keys_unavailable")
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


def verify_webhook(
    *, body: bytes, headers: Mapping[str, str], now: float | None = None
) -> SignedWebhook:
    """Raise WebhookRejected unless fal signed this exact body recently (for our fal user,
    when FAL_WEBHOOK_USER_ID pins one); return the request and user ids it signed."""
    try:
        request_id = headers[HEADER_REQUEST_ID]
        user_id = headers[HEADER_USER_ID]
        timestamp = headers[HEADER_TIMESTAMP]
        signature = bytes.fromhex(headers[HEADER_SIGNATURE])
    except KeyError as exc:
        raise WebhookRejected(f"missing header {exc.args[0]}", reason="missing_headers") from None
    except ValueError:
        raise WebhookRejected("the signature is not hex") from None
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        raise WebhookRejected("the timestamp is not a number", reason="bad_timestamp") from None
    if age > settings.FAL_WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookRejected("the timestamp is outside the tolerance", reason="stale_timestamp")
    message = "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()
    if not (
        _verifies(key_cache.keys(), signature, message)
        or _verifies(key_cache.keys(refresh=True), signature, message)
    ):
        raise WebhookRejected("the signature does not verify")
    pinned = settings.FAL_WEBHOOK_USER_ID
    if pinned and not constant_time_compare(user_id, pinned):
        raise WebhookNotOurs(
            f"the webhook is for another fal user ({user_id[:100]})", reason="wrong_user"
        )
    return SignedWebhook(request_id=request_id, user_id=user_id)
