"""fal-style webhook signing, JWKS and a retrying delivery queue.

Signature (fal.md §2): hex Ed25519 over
``request_id + "\\n" + user_id + "\\n" + timestamp + "\\n" + sha256_hex(raw_body)``.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

log = logging.getLogger(__name__)


def sign_webhook(
    private_key: Ed25519PrivateKey,
    body: bytes,
    request_id: str,
    user_id: str,
    timestamp: int | str | None = None,
) -> dict[str, str]:
    """Headers fal would send with ``body``; usable to forge webhooks in tests."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    message = "\n".join([request_id, user_id, ts, hashlib.sha256(body).hexdigest()])
    signature = private_key.sign(message.encode())
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": ts,
        "X-Fal-Webhook-Signature": signature.hex(),
    }


def verify_webhook(
    raw: bytes,
    headers: Mapping[str, str],
    jwks: Mapping[str, Any],
    *,
    now: float | None = None,
    tolerance: int = 300,
) -> bool:
    """The verifier from fal.md §2 (header lookup made case-insensitive)."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        ts = h["x-fal-webhook-timestamp"]
        if abs((time.time() if now is None else now) - int(ts)) > tolerance:
            return False
        msg = "\n".join(
            [
                h["x-fal-webhook-request-id"],
                h["x-fal-webhook-user-id"],
                ts,
                hashlib.sha256(raw).hexdigest(),
            ]
        ).encode()
        sig = bytes.fromhex(h["x-fal-webhook-signature"])
    except (KeyError, ValueError):
        return False
    for key in jwks.get("keys", []):
        x = str(key.get("x", "")).rstrip("=")
        try:
            public = Ed25519PublicKey.from_public_bytes(
                base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            )
            public.verify(sig, msg)
            return True
        except Exception:
            continue
    return False


def public_jwk(private_key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    """The JWK as fal serves it: ``x`` keeps its ``=`` padding (RFC 7517 says unpadded
    base64url; fal's live JWKS pads, fal.md §2), so verifiers must accept both."""
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"}


def post_signed_webhook(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = 10.0,
) -> int:
    """POST ``body`` with fal's signature ``headers`` to ``url``; returns the HTTP status.

    Any fal customer can do this with a webhook of their own job (fal signs every
    customer's webhooks with the same keys): the forgery tests and the chaos suite play
    that customer.
    """
    with httpx.Client(verify=False, trust_env=False, timeout=timeout) as http:
        response = http.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "fal-webhook/fakefal",
                **headers,
            },
        )
    return response.status_code


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    url: str = field(compare=False)
    body: bytes = field(compare=False, repr=False)
    request_id: str = field(compare=False)
    attempt: int = field(default=1, compare=False)
    duplicate: bool = field(default=False, compare=False)


@dataclass
class DeliverySettings:
    max_attempts: int = 4
    retry_base: float = 0.25
    timeout: float = 10.0


class WebhookDispatcher:
    """Background thread: advances the fake's clock-driven jobs and sends due webhooks.

    ``tick(now)`` is called on every wake-up; it lets finished jobs enqueue their
    webhooks and returns the next time a job changes state (or None).
    Sending happens on a small pool so one slow target does not stall the others.
    """

    def __init__(
        self,
        *,
        sign: Callable[[bytes, str], dict[str, str]],
        settings: Callable[[], DeliverySettings],
        on_result: Callable[[Delivery, int | None, str | None], None],
        tick: Callable[[float], float | None],
        workers: int = 16,
    ) -> None:
        self._sign = sign
        self._settings = settings
        self._on_result = on_result
        self._tick = tick
        self._heap: list[Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fakefal-webhook")
        # Targets are local test servers, often with their own throwaway certificates.
        self._http = httpx.Client(verify=False, trust_env=False)
        self._thread = threading.Thread(target=self._run, name="fakefal-scheduler", daemon=True)
        self._pending = 0
        self._dirty = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def wake(self) -> None:
        """Job timing changed (submit, cancel, config): recompute the next wake-up."""
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._pending -= len(self._heap)
            self._heap.clear()

    def schedule(
        self, url: str, body: bytes, request_id: str, due: float, *, duplicate: bool = False
    ) -> None:
        with self._cond:
            heapq.heappush(
                self._heap,
                Delivery(due, next(self._seq), url, body, request_id, duplicate=duplicate),
            )
            self._pending += 1
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        """Deliveries queued or in flight (including retries)."""
        with self._cond:
            return self._pending

    def send_now(self, url: str, body: bytes, request_id: str) -> bool:
        """Deliver synchronously (used for 'webhook before submit response')."""
        with self._cond:
            self._pending += 1
        delivery = Delivery(time.monotonic(), next(self._seq), url, body, request_id)
        return self._attempt(delivery)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._dirty = False
            next_job = self._tick(time.monotonic())
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                while self._heap and self._heap[0].due <= now:
                    self._pool.submit(self._attempt, heapq.heappop(self._heap))
                if self._dirty:  # a wake() raced with tick(): tick again
                    continue
                wake_at = now + 1.0
                if self._heap:
                    wake_at = min(wake_at, self._heap[0].due)
                if next_job is not None:
                    wake_at = min(wake_at, next_job)
                self._cond.wait(timeout=max(0.0, wake_at - time.monotonic()))

    def _attempt(self, delivery: Delivery) -> bool:
        settings = self._settings()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "fal-webhook/fakefal",
            **self._sign(delivery.body, delivery.request_id),
        }
        status: int | None = None
        error: str | None = None
        try:
            response = self._http.post(
                delivery.url, content=delivery.body, headers=headers, timeout=settings.timeout
            )
            status = response.status_code
            ok = 200 <= status < 300
        except Exception as exc:  # any transport problem counts as a failed attempt
            error = f"{type(exc).__name__}: {exc}"
            ok = False
        self._on_result(delivery, status, error)
        with self._cond:
            if not ok and delivery.attempt < settings.max_attempts and not self._stopped:
                delivery.due = time.monotonic() + settings.retry_base * 2 ** (delivery.attempt - 1)
                delivery.attempt += 1
                delivery.seq = next(self._seq)
                heapq.heappush(self._heap, delivery)
                self._cond.notify_all()
            else:
                self._pending -= 1
        return ok
