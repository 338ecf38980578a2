"""Stripe's webhook signature scheme, written out here (not borrowed from the `stripe`
package, so the tests check our verification against an independent signer).

`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" keyed with the
endpoint's signing secret>`; several `v1` entries while a secret is being rolled, and in
test mode a `v0` entry too (https://docs.stripe.com/webhooks#verify-manually).
"""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(
    payload: bytes,
    secrets: str | list[str],
    *,
    timestamp: int | None = None,
    test_mode_v0: bool = False,
) -> str:
    """The header Stripe sends: one `v1` per secret (a rolled secret signs with both)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={timestamp}"]
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        parts.append(f"v1={signature(payload, secret, timestamp)}")
    if test_mode_v0:
        parts.append(f"v0={signature(payload, 'whsec_v0_not_checked', timestamp)}")
    return ",".join(parts)
