"""A verified Stripe event to the fulfilment service it calls.

Handled: `checkout.session.completed` (paid now, or processing until an asynchronous
payment settles), `checkout.session.async_payment_succeeded` / `_failed`,
`checkout.session.expired`, `charge.refunded` and a dispute's events (`created`,
`updated`, `funds_withdrawn`, `funds_reinstated`, `closed`). Every other type is
acknowledged and ignored (an endpoint may be subscribed to more).
"""

from __future__ import annotations

import logging
from typing import Any

from accounts.payments import fulfilment
from accounts.payments.fulfilment import ChargeReversal
from accounts.payments.stripe_gateway import CheckoutSession, EventRejected, session_from_object

logger = logging.getLogger(__name__)

# Each is answered from the dispute as Stripe has it now (`fulfilment.record_dispute`).
DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
    }
)


def _text(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if isinstance(value, dict):  # an expanded object
        value = value.get("id")
    if value is None or isinstance(value, str):
        return value
    raise EventRejected(f"{name} is not a string")


def _amount(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EventRejected(f"{name} is not an amount")
    return value


def _checkout_session(obj: dict[str, Any]) -> CheckoutSession:
    if obj.get("object") != "checkout.session" or not isinstance(obj.get("id"), str):
        raise EventRejected("not a checkout session")
    _text(obj, "payment_intent")
    if not isinstance(obj.get("metadata") or {}, dict):
        raise EventRejected("metadata is not an object")
    return session_from_object(obj)


def handle_event(event: dict[str, Any]) -> str:
    """Apply one verified event; returns what happened (for the log and the answer).
    EventRejected if its object is not what its type promises."""
    kind = event["type"]
    obj = event["data"]["object"]
    if kind == "checkout.session.completed":
        session = _checkout_session(obj)
        if session.payment_status == "paid":
            return fulfilment.mark_paid(session)
        return fulfilment.mark_processing(session)
    if kind == "checkout.session.async_payment_succeeded":
        return fulfilment.mark_paid(_checkout_session(obj))
    if kind == "checkout.session.async_payment_failed":
        return fulfilment.mark_failed(
            _checkout_session(obj), reason="The payment did not go through."
        )
    if kind == "checkout.session.expired":
        return fulfilment.mark_expired(_checkout_session(obj))
    if kind == "charge.refunded":
        if obj.get("object") != "charge":
            raise EventRejected("not a charge")
        return fulfilment.record_reversal(
            ChargeReversal(
                payment_intent=_text(obj, "payment_intent"),
                charge=_text(obj, "id") or "",
                refunded_cents=_amount(obj, "amount_refunded"),
            )
        )
    if kind in DISPUTE_EVENTS:
        if obj.get("object") != "dispute" or not _text(obj, "id"):
            raise EventRejected("not a dispute")
        return fulfilment.record_dispute(
            dispute_id=_text(obj, "id") or "",
            payment_intent=_text(obj, "payment_intent"),
            charge=_text(obj, "charge") or "",
        )
    return "ignored"
