"""The only module that imports `stripe`: Checkout Sessions and signed webhook events.

It returns small dataclasses and raises our errors; no ORM here. The client is pointed at
`STRIPE_API_BASE` (Stripe's own by default, a fake in tests).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import stripe
from django.conf import settings
from django.utils.translation import gettext_lazy
from rest_framework import status

from veoproject.exceptions import ApplicationError

logger = logging.getLogger(__name__)


class PaymentsDisabled(ApplicationError):
    code = "payments_disabled"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_message = gettext_lazy(
        "Buying credits is not available on this site; redeem a voucher instead."
    )


class PaymentProviderError(ApplicationError):
    code = "payment_provider_error"
    http_status = status.HTTP_502_BAD_GATEWAY
    default_message = gettext_lazy(
        "The payment provider could not be reached. Nothing was charged; try again."
    )


class EventRejected(Exception):
    """A webhook delivery that is not a genuine, readable Stripe event."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str | None
    status: str | None
    payment_status: str
    payment_intent: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    client_reference_id: str | None = None
    amount_total: int | None = None
    currency: str | None = None


def enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def _client() -> stripe.StripeClient:
    if not enabled():
        raise PaymentsDisabled()
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        # Retries of a create carry our idempotency key: Stripe answers with the first session.
        max_network_retries=2,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_HTTP_TIMEOUT),
    )


def session_from_object(obj: dict[str, Any]) -> CheckoutSession:
    payment_intent = obj.get("payment_intent")
    if isinstance(payment_intent, dict):  # expanded
        payment_intent = payment_intent.get("id")
    return CheckoutSession(
        id=obj["id"],
        url=obj.get("url"),
        status=obj.get("status"),
        payment_status=obj.get("payment_status") or "unpaid",
        payment_intent=payment_intent or None,
        metadata={str(k): str(v) for k, v in (obj.get("metadata") or {}).items()},
        client_reference_id=obj.get("client_reference_id"),
        amount_total=obj["amount_total"] if isinstance(obj.get("amount_total"), int) else None,
        currency=obj["currency"] if isinstance(obj.get("currency"), str) else None,
    )


def create_checkout_session(
    *,
    purchase_id: int,
    user_id: int,
    pack_id: int,
    product_name: str,
    amount_cents: int,
    currency: str,
    customer_email: str,
    success_url: str,
    cancel_url: str,
) -> CheckoutSession:
    """One Checkout Session (mode `payment`) for one purchase. Idempotent by the purchase:
    a retried create gets the first session back."""
    metadata = {"purchase_id": str(purchase_id), "user_id": str(user_id), "pack_id": str(pack_id)}
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount_cents,
                    "product_data": {"name": product_name},
                },
            }
        ],
        "client_reference_id": str(purchase_id),
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if customer_email:
        params["customer_email"] = customer_email
    try:
        session = _client().v1.checkout.sessions.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": f"purchase-{purchase_id}"},
        )
    except stripe.StripeError as exc:
        logger.warning(
            "event=stripe_session_create_failed purchase=%s status=%s error=%s",
            purchase_id,
            exc.http_status,
            exc.user_message or exc.__class__.__name__,
        )
        raise PaymentProviderError() from exc
    return session_from_object(session.to_dict())


def session_for_payment_intent(payment_intent: str) -> CheckoutSession | None:
    """The Checkout Session that made a PaymentIntent (for a refund or dispute that
    arrives before the session's own event), or None."""
    try:
        page = _client().v1.checkout.sessions.list(
            params={"payment_intent": payment_intent, "limit": 1}
        )
    except stripe.StripeError as exc:
        logger.warning(
            "event=stripe_session_lookup_failed payment_intent=%s error=%s",
            payment_intent,
            exc.__class__.__name__,
        )
        raise PaymentProviderError() from exc
    return session_from_object(page.data[0].to_dict()) if page.data else None


@dataclass(frozen=True)
class Dispute:
    id: str
    status: str
    amount: int

    # Stripe's statuses in which the disputed amount has left our balance. Inquiries
    # (`warning_*`) withdraw nothing; `won` reinstates the funds.
    WITHDRAWN = frozenset({"needs_response", "under_review", "lost"})

    @property
    def withdrawn_cents(self) -> int:
        return self.amount if self.status in self.WITHDRAWN else 0


def current_dispute(dispute_id: str) -> Dispute:
    """The dispute as Stripe has it now. Its events may arrive late or out of order (a
    `created` after the `closed`), so each one is answered from the current state, not
    from the event's snapshot. PaymentProviderError if Stripe cannot be asked (the webhook
    answers 5xx and Stripe delivers the event again)."""
    try:
        dispute = _client().v1.disputes.retrieve(dispute_id)
    except stripe.StripeError as exc:
        logger.warning(
            "event=stripe_dispute_lookup_failed dispute=%s error=%s",
            dispute_id,
            exc.__class__.__name__,
        )
        raise PaymentProviderError() from exc
    return Dispute(id=dispute.id, status=str(dispute.status), amount=int(dispute.amount))


def verified_event(*, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event in a webhook delivery, once `stripe.Webhook.construct_event` has checked
    its `Stripe-Signature` against STRIPE_WEBHOOK_SECRET (and its age); EventRejected for
    anything else (no secret configured, no or bad signature, too old, not JSON)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise EventRejected("STRIPE_WEBHOOK_SECRET is not set")
    try:
        stripe.Webhook.construct_event(
            payload, signature, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
        )
        event = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise EventRejected(f"signature: {exc.user_message or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise EventRejected(f"unreadable body: {exc.__class__.__name__}") from None
    if not (
        isinstance(event, dict)
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise EventRejected("not an event")
    return event
