"""What staff do to generations besides moderating them: cancel, refund, re-check with fal.

Each wraps the one service that owns the rule (`generations.services`, `accounts.ledger`)
and records the action, with its reason, in the audit trail (`veoproject.audit`).
"""

from __future__ import annotations

from django.db import transaction

from accounts import ledger
from accounts.models import LedgerEntry, User
from generations.models import Generation
from veoproject import audit


def cancel_generation(*, generation: Generation, actor: User, reason: str) -> Generation:
    """Cancel a generation that fal has not started (pending or queued) and release its
    hold; InvalidTransition otherwise."""
    from generations import services

    reason = audit.require_reason(reason)
    with transaction.atomic():
        generation = services.cancel(generation=generation, actor=actor)
        audit.record(
            actor=actor,
            objects=[generation],
            action_flag=audit.CHANGE,
            message=f"Canceled by staff: {reason}",
        )
    return generation


def refund_generation(
    *, generation: Generation, actor: User, reason: str
) -> tuple[LedgerEntry, bool]:
    """Give back the credits a succeeded generation captured, once. Returns the refund
    entry and whether it was made now (False: it had been refunded before)."""
    reason = audit.require_reason(reason)
    with transaction.atomic():
        # Serialises staff refunds of one generation, so only one of them is recorded.
        Generation.objects.select_for_update().filter(pk=generation.pk).first()
        before = LedgerEntry.objects.filter(
            generation=generation, kind=LedgerEntry.Kind.REFUND
        ).first()
        if before is not None:
            return before, False
        entry = ledger.refund(generation=generation, reason=reason, actor=actor)
        audit.record(
            actor=actor,
            objects=[generation],
            action_flag=audit.CHANGE,
            message=f"Refunded {entry.amount} credits (ledger entry {entry.pk}): {reason}",
        )
    return entry, True


def recheck_generation(*, generation: Generation, actor: User) -> Generation:
    """Ask fal for the status of an in-flight generation now (instead of at the next
    poll); fal errors propagate as FalError."""
    from generations import services

    before = generation.status
    generation = services.refresh_from_fal(generation=generation)
    audit.record(
        actor=actor,
        objects=[generation],
        action_flag=audit.CHANGE,
        message=f"Re-checked with fal: {before} -> {generation.status}",
    )
    return generation


def resume_dispatch(*, actor: User) -> bool:
    """End a pause of dispatch to fal now, instead of waiting for the probe (audited by
    the service). False if dispatch was not paused."""
    from generations.services import account

    return account.resume_dispatch(actor=actor)
