"""What Stripe's events do to a purchase.

Every function here takes the buyer's account row lock and then the purchase's first
(the ledger's order: see `_lock_account_first`), so any number of deliveries of any
events, in any order, serialise on them: the first `mark_paid` grants the one top-up
(also keyed by the session id in the ledger), later ones find it paid. A refund or
dispute records Stripe's cumulative amounts and takes back the matching credits through
`accounts.ledger.take_back`; one that arrives before the payment is applied right after
the grant.

Status changes follow `TRANSITIONS`: a purchase is paid whenever Stripe says the money came,
and nothing moves a paid one back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.utils import timezone

from accounts import ledger
from accounts.models import LedgerEntry, Purchase
from accounts.payments import on_purchase_paid, stripe_gateway
from accounts.payments.stripe_gateway import CheckoutSession

logger = logging.getLogger(__name__)

Status = Purchase.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.PROCESSING, Status.PAID, Status.FAILED, Status.EXPIRED}),
    Status.PROCESSING: frozenset({Status.PAID, Status.FAILED}),
    # Stripe said the money came: believe it whatever arrived before.
    Status.FAILED: frozenset({Status.PAID}),
    Status.EXPIRED: frozenset({Status.PAID}),
    Status.PAID: frozenset(),
}


def _move(purchase: Purchase, to: str, **fields) -> bool:
    """Change the status of a locked purchase if `TRANSITIONS` allows it; False if not."""
    if to not in TRANSITIONS[purchase.status]:
        return False
    purchase.status = to
    for name, value in fields.items():
        setattr(purchase, name, value)
    purchase.save(update_fields=["status", "updated_at", *fields])
    return True


def _locked_for_session(session: CheckoutSession) -> Purchase | None:
    """The purchase of a session, locked: by the session id, or, for a webhook that beat
    `start_checkout` to saving that id, by the purchase id the session carries."""
    # Only the metadata our own `start_checkout` wrote (purchase and user), never
    # `client_reference_id`, which any Payment Link on the same account lets a buyer set.
    purchase_id = session.metadata.get("purchase_id", "")
    user_id = session.metadata.get("user_id", "")
    buyer = (
        Purchase.objects.filter(stripe_session_id=session.id)
        .values_list("user_id", flat=True)
        .first()
    )
    _lock_account_first(buyer or (int(user_id) if user_id.isdigit() else None))
    purchase = Purchase.objects.select_for_update().filter(stripe_session_id=session.id).first()
    if purchase is None and purchase_id.isdigit() and user_id.isdigit():
        purchase = (
            Purchase.objects.select_for_update()
            .filter(pk=int(purchase_id), user_id=int(user_id), stripe_session_id__isnull=True)
            .first()
        )
        if purchase is not None and not _pays_for(session, purchase):
            return None
        if purchase is not None:
            purchase.stripe_session_id = session.id
            purchase.save(update_fields=["stripe_session_id", "updated_at"])
    if purchase is None:
        logger.warning("event=stripe_session_unknown session=%s", session.id)
    return purchase


def _lock_account_first(user_id: int | None) -> None:
    """Lock the buyer's credit account before their purchase: the ledger lowers a
    purchase's `credits_owed` while it holds the account (a debt paid by any incoming
    credits), so this one order, account then purchase, never deadlocks with it."""
    if user_id is not None:
        ledger.lock_account(user_id=user_id)


def _note_payment_intent(purchase: Purchase, session: CheckoutSession) -> None:
    if session.payment_intent and not purchase.stripe_payment_intent_id:
        purchase.stripe_payment_intent_id = session.payment_intent
        purchase.save(update_fields=["stripe_payment_intent_id", "updated_at"])


def _pays_for(session: CheckoutSession, purchase: Purchase) -> bool:
    """A session pays for a purchase only with at least its price in its currency."""
    if session.amount_total is None and session.currency is None:
        return True  # an event without amounts (older API versions): matched by ids alone
    paid = (
        session.amount_total is not None
        and session.amount_total >= purchase.amount_cents
        and (session.currency or "").lower() == purchase.currency.lower()
    )
    if not paid:
        logger.error(
            "event=stripe_session_mismatch purchase=%s session=%s amount=%s currency=%s",
            purchase.pk,
            session.id,
            session.amount_total,
            session.currency,
        )
    return paid


def mark_paid(session: CheckoutSession) -> str:
    """Stripe says the session is paid: grant the purchase's credits, once (a top-up keyed
    by the session id), then apply any refund or dispute that arrived first. Returns the
    outcome: "paid", "already_paid" or "unknown"."""
    with transaction.atomic():
        purchase = _locked_for_session(session)
        if purchase is None:
            return "unknown"
        _note_payment_intent(purchase, session)
        if purchase.is_paid:
            return "already_paid"
        entry = ledger.grant(
            user=purchase.user,
            amount=purchase.credits,
            kind=LedgerEntry.Kind.TOPUP,
            reason=f"Purchase #{purchase.pk}: {purchase.pack.name}",
            idempotency_key=f"stripe:{session.id}",
        )
        _move(purchase, Status.PAID, paid_at=timezone.now(), grant_entry=entry, failure_reason="")
        _settle_reversed(purchase)
        transaction.on_commit(partial(on_purchase_paid, purchase.pk))
    logger.info(
        "event=purchase_granted purchase=%s user=%s credits=%s session=%s",
        purchase.pk,
        purchase.user_id,
        purchase.credits,
        session.id,
    )
    return "paid"


def mark_processing(session: CheckoutSession) -> str:
    """The buyer finished Checkout with a payment that settles later (a bank debit)."""
    with transaction.atomic():
        purchase = _locked_for_session(session)
        if purchase is None:
            return "unknown"
        _note_payment_intent(purchase, session)
        return "processing" if _move(purchase, Status.PROCESSING) else "unchanged"


def mark_failed(session: CheckoutSession, *, reason: str) -> str:
    with transaction.atomic():
        purchase = _locked_for_session(session)
        if purchase is None:
            return "unknown"
        _note_payment_intent(purchase, session)
        return "failed" if _move(purchase, Status.FAILED, failure_reason=reason) else "unchanged"


def mark_expired(session: CheckoutSession) -> str:
    with transaction.atomic():
        purchase = _locked_for_session(session)
        if purchase is None:
            return "unknown"
        return "expired" if _move(purchase, Status.EXPIRED) else "unchanged"


@dataclass(frozen=True)
class ChargeReversal:
    """A refund or a dispute of a charge: which charge, and for a refund Stripe's
    cumulative refunded amount."""

    payment_intent: str | None
    charge: str
    refunded_cents: int = 0


def _purchase_id_for_charge(reversal: ChargeReversal) -> int | None:
    found = None
    if reversal.payment_intent:
        found = (
            Purchase.objects.filter(stripe_payment_intent_id=reversal.payment_intent)
            .values_list("pk", flat=True)
            .first()
        )
    if found is None and reversal.charge:
        found = (
            Purchase.objects.filter(stripe_charge_id=reversal.charge)
            .values_list("pk", flat=True)
            .first()
        )
    if found is None and reversal.payment_intent:
        # Before the session's own event: ask Stripe which session made the payment.
        session = stripe_gateway.session_for_payment_intent(reversal.payment_intent)
        if session is not None:
            found = (
                Purchase.objects.filter(stripe_session_id=session.id)
                .values_list("pk", flat=True)
                .first()
            )
    return found


def record_reversal(reversal: ChargeReversal) -> str:
    """A charge was refunded: remember the largest amount Stripe reported (refunds only
    grow) and take back the credits it bought (see `_settle_reversed`). Returns
    "taken_back", "recorded" (nothing more to take back, or not paid yet) or "unknown"."""
    purchase_id = _purchase_id_for_charge(reversal)  # may call Stripe: outside the lock
    if purchase_id is None:
        return _unknown_charge(reversal)
    with transaction.atomic():
        purchase = _locked_with_charge(purchase_id, reversal)
        purchase.refunded_cents = max(purchase.refunded_cents, reversal.refunded_cents)
        purchase.save(update_fields=["refunded_cents", "updated_at"])
        return _settle_reversed(purchase)


def record_dispute(*, dispute_id: str, payment_intent: str | None, charge: str) -> str:
    """Any event of a dispute: ask Stripe for the dispute as it is now and make the
    purchase's disputed amount what Stripe has withdrawn (nothing for an inquiry or a won
    dispute), then take back or give back the difference in credits. Events arrive late
    and out of order; the current state makes every order end the same. Returns
    "taken_back", "given_back", "recorded" or "unknown"."""
    reversal = ChargeReversal(payment_intent=payment_intent, charge=charge)
    purchase_id = _purchase_id_for_charge(reversal)
    if purchase_id is None:
        return _unknown_charge(reversal)
    dispute = stripe_gateway.current_dispute(dispute_id)  # outside the lock
    with transaction.atomic():
        purchase = _locked_with_charge(purchase_id, reversal)
        purchase.disputed_cents = dispute.withdrawn_cents
        purchase.save(update_fields=["disputed_cents", "updated_at"])
        logger.info(
            "event=purchase_dispute purchase=%s dispute=%s status=%s withdrawn_cents=%s",
            purchase.pk,
            dispute.id,
            dispute.status,
            dispute.withdrawn_cents,
        )
        return _settle_reversed(purchase)


def _unknown_charge(reversal: ChargeReversal) -> str:
    logger.warning(
        "event=stripe_charge_unknown charge=%s payment_intent=%s",
        reversal.charge,
        reversal.payment_intent,
    )
    return "unknown"


def _locked_with_charge(purchase_id: int, reversal: ChargeReversal) -> Purchase:
    _lock_account_first(
        Purchase.objects.filter(pk=purchase_id).values_list("user_id", flat=True).first()
    )
    purchase = Purchase.objects.select_for_update().get(pk=purchase_id)
    purchase.stripe_charge_id = purchase.stripe_charge_id or reversal.charge
    if reversal.payment_intent:
        purchase.stripe_payment_intent_id = (
            purchase.stripe_payment_intent_id or reversal.payment_intent
        )
    purchase.save(update_fields=["stripe_charge_id", "stripe_payment_intent_id", "updated_at"])
    return purchase


def _settle_reversed(purchase: Purchase) -> str:
    """Bring the credits reversed for a paid purchase to the share its refunded plus
    disputed amount bought (rounded down): take back what is missing, or give back what a
    won dispute returned. The purchase is locked; each ledger key names the purchase and
    the new target, so one step is taken once."""
    if not purchase.is_paid:
        return "recorded"  # nothing granted yet: mark_paid calls this after the grant
    reversed_cents = min(purchase.amount_cents, purchase.refunded_cents + purchase.disputed_cents)
    target = purchase.credits * reversed_cents // purchase.amount_cents
    due = target - purchase.credits_reversed
    if due > 0:
        return "taken_back" if _take_back(purchase, due, target) else "recorded"
    if due < 0:
        return "given_back" if _give_back(purchase, -due, target) else "recorded"
    return "recorded"


def _take_back(purchase: Purchase, due: int, target: int) -> bool:
    result = ledger.take_back(
        user=purchase.user,
        credits=due,
        reason=f"Purchase #{purchase.pk} refunded or disputed",
        idempotency_key=ledger.reversal_key(purchase_id=purchase.pk, target=target),
    )
    if result.repeated:
        logger.error("event=purchase_reversal_repeated purchase=%s target=%s", purchase.pk, target)
        return False
    purchase.credits_taken_back += result.taken
    purchase.credits_owed += result.owed
    purchase.save(update_fields=["credits_taken_back", "credits_owed", "updated_at"])
    logger.info(
        "event=purchase_reversed purchase=%s taken=%s owed=%s",
        purchase.pk,
        result.taken,
        result.owed,
    )
    return True


def _give_back(purchase: Purchase, credits: int, target: int) -> bool:
    """A won dispute: the credits taken back return to the balance; what is still owed for
    this purchase is paid from them first, then the account's other debts (the ledger pays
    debt from any incoming credits, and lowers the purchases that owe it, oldest first),
    so the account ends as if the dispute had not happened."""
    key = ledger.reinstatement_key(purchase_id=purchase.pk, target=target)
    if LedgerEntry.objects.filter(idempotency_key=key).exists():
        logger.error(
            "event=purchase_reinstatement_repeated purchase=%s target=%s", purchase.pk, target
        )
        return False
    # This purchase's own debt first: lowered here, the ledger's debt payment below then
    # finds it paid and lowers the other purchases by the rest.
    owed_cleared = min(purchase.credits_owed, credits)
    purchase.credits_owed -= owed_cleared
    purchase.credits_taken_back -= credits - owed_cleared
    purchase.save(update_fields=["credits_taken_back", "credits_owed", "updated_at"])
    ledger.adjust(
        user=purchase.user,
        amount=credits,
        reason=f"Purchase #{purchase.pk}: dispute won, credits returned",
        idempotency_key=key,
    )
    purchase.refresh_from_db(fields=["credits_taken_back", "credits_owed", "updated_at"])
    logger.info(
        "event=purchase_reinstated purchase=%s credits=%s owed_cleared=%s",
        purchase.pk,
        credits,
        owed_cleared,
    )
    return True
