"""The emails people expect: a video's outcome, a purchase receipt (and, in
`notifications.low_balance`, the low-balance warning).

The hooks (`generation_finished`, `purchase_paid`) are called inside the caller's
transaction and enqueue a task at commit; the tasks call the `send_*` functions, which
re-read everything, decide, claim the email and send it (`notifications.delivery`): each
email at most once, however often its task runs. The hooks' commit callbacks are robust: an
email that cannot be enqueued is logged and never stops what follows the commit (the
integrator's callback, the answer to the request)."""

from __future__ import annotations

import logging
from uuid import UUID

from django.db import transaction
from django.urls import reverse
from django.utils import translation

from accounts.models import LedgerEntry, Purchase
from accounts.payments.money import format_amount
from generations import wording
from generations.models import Generation
from notifications import delivery
from notifications.models import SentEmail
from notifications.preferences import preferences_for
from notifications.tasks import enqueue
from veoproject import languages

logger = logging.getLogger(__name__)

Kind = SentEmail.Kind


def generation_finished(*, generation_id: UUID) -> None:
    """A generation reached its final state in the caller's transaction: tell its owner
    after commit (settlement calls this; not for a cancel the owner asked for)."""
    transaction.on_commit(lambda: enqueue("generation_outcome", generation_id), robust=True)


def purchase_paid(*, purchase_id: int) -> None:
    """A purchase was paid in the caller's transaction: send its receipt after commit."""
    transaction.on_commit(lambda: enqueue("purchase_receipt", purchase_id), robust=True)


def _charged(generation: Generation) -> int | None:
    """Credits its settlement spent: 0 when the hold was released, None if unsettled."""
    settlement = (
        LedgerEntry.objects.filter(
            generation=generation, kind__in=[LedgerEntry.Kind.CAPTURE, LedgerEntry.Kind.RELEASE]
        )
        .values_list("amount", flat=True)
        .first()
    )
    return None if settlement is None else -settlement


def send_generation_outcome(*, generation_id: UUID) -> bool:
    """ "Your video is ready" or "could not be made" to the owner, once per generation,
    if they want video emails. False when nothing was sent."""
    generation = Generation.objects.select_related("owner").filter(pk=generation_id).first()
    if generation is None or not generation.is_final:
        return False
    owner = generation.owner
    if not owner.is_active or not owner.email or not preferences_for(owner).video_emails:
        return False
    kind = Kind.VIDEO_READY if generation.is_succeeded else Kind.VIDEO_FAILED
    claimed = delivery.claim(user=owner, kind=kind, to=owner.email, generation=generation)
    if claimed is None:
        return False
    charged = _charged(generation)
    with translation.override(languages.for_recipient(owner)):
        message = delivery.build(
            template="video_ready" if kind == Kind.VIDEO_READY else "video_failed",
            to=owner.email,
            user_id=owner.pk,
            topic="video",
            context={
                "user": owner,
                "generation": generation,
                "generation_url": delivery.site_url(
                    reverse("generation-detail", args=[generation.pk])
                ),
                "studio_url": delivery.site_url(reverse("studio")),
                "reason": wording.failure_reason(generation) or wording.UNKNOWN_FAILURE,
                "settlement": wording.settlement(generation),
                "charged": charged or 0,
            },
        )
    delivery.send(claimed, message)
    return True


def send_purchase_receipt(*, purchase_id: int) -> bool:
    """The receipt of a paid purchase, once. False when nothing was sent (not paid, or
    sent before)."""
    purchase = Purchase.objects.select_related("user", "pack").filter(pk=purchase_id).first()
    if purchase is None or not purchase.is_paid:
        return False
    user = purchase.user
    if not user.email:
        return False
    claimed = delivery.claim(
        user=user, kind=Kind.PURCHASE_RECEIPT, to=user.email, purchase_ref=str(purchase.pk)
    )
    if claimed is None:
        return False
    with translation.override(languages.for_recipient(user)):
        message = delivery.build(
            template="purchase_receipt",
            to=user.email,
            user_id=user.pk,
            context={
                "user": user,
                "purchase": purchase,
                "amount": format_amount(purchase.amount_cents, purchase.currency),
                "credits_url": delivery.site_url(reverse("credits")),
            },
        )
    delivery.send(claimed, message)
    return True
