"""Webhook deliveries as Stripe makes them, and as an attacker or a bad network would.

``StripeWebhooks`` posts events to ``/webhooks/stripe/`` through a Django test client (or
any client with ``.post``), raw JSON with a ``Stripe-Signature`` header. Stripe
redelivers (at least once, for days, https://docs.stripe.com/webhooks#retries) and does
not promise order (https://docs.stripe.com/webhooks#event-ordering): ``redeliver`` and
``in_order`` play that; ``unsigned``, ``wrong_secret``, ``tampered``, ``stale``,
``not_json`` and ``replayed_signature`` play forgeries.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from typing import Any

from .signing import signature_header

PATH = "/webhooks/stripe/"


class StripeWebhooks:
    def __init__(self, client: Any, secret: str, path: str = PATH) -> None:
        self.client = client
        self.secret = secret
        self.path = path

    def post(self, body: bytes, header: str | None) -> Any:
        headers = {"Stripe-Signature": header} if header is not None else {}
        return self.client.post(
            self.path, data=body, content_type="application/json", headers=headers
        )

    def deliver(self, event: dict[str, Any], *, timestamp: int | None = None) -> Any:
        body = json.dumps(event).encode()
        return self.post(body, signature_header(body, self.secret, timestamp=timestamp))

    def redeliver(self, event: dict[str, Any], times: int) -> list[Any]:
        """The same event `times` times, each signed afresh (as Stripe's retries are)."""
        return [self.deliver(event) for _ in range(times)]

    def in_order(self, events: Iterable[dict[str, Any]], order: str = "reversed",
                 seed: int = 13) -> list[Any]:  # fmt: skip
        events = list(events)
        if order == "reversed":
            events.reverse()
        elif order == "shuffled":
            random.Random(seed).shuffle(events)
        return [self.deliver(e) for e in events]

    # Hostile deliveries ----------------------------------------------------------------

    def unsigned(self, event: dict[str, Any]) -> Any:
        return self.post(json.dumps(event).encode(), None)

    def wrong_secret(self, event: dict[str, Any]) -> Any:
        body = json.dumps(event).encode()
        return self.post(body, signature_header(body, "whsec_somebody_elses_secret"))

    def tampered(self, event: dict[str, Any], **changes: Any) -> Any:
        """Signed, then changed (e.g. the amount or the metadata) on the way."""
        body = json.dumps(event).encode()
        header = signature_header(body, self.secret)
        forged = json.loads(body)
        forged["data"]["object"].update(changes)
        return self.post(json.dumps(forged).encode(), header)

    def stale(self, event: dict[str, Any], age_seconds: int = 3600) -> Any:
        """Correctly signed, long ago: a captured delivery replayed later."""
        return self.deliver(event, timestamp=int(time.time()) - age_seconds)

    def replayed_signature(self, event: dict[str, Any], other: dict[str, Any]) -> Any:
        """A genuine header from one delivery on the body of another event."""
        genuine = json.dumps(other).encode()
        header = signature_header(genuine, self.secret)
        return self.post(json.dumps(event).encode(), header)

    def malformed_header(self, event: dict[str, Any]) -> Any:
        return self.post(json.dumps(event).encode(), "t=notanumber,v1=zz")

    def not_json(self) -> Any:
        body = b"\xff\xfenot json at all"
        return self.post(body, signature_header(body, self.secret))

    def signed_but_not_an_event(self) -> Any:
        body = json.dumps({"type": "checkout.session.completed", "data": []}).encode()
        return self.post(body, signature_header(body, self.secret))
