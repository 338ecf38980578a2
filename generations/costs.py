"""Money that fal bills: what a generation costs us at fal, which videos fal bills, and who
pays for a video fal billed but the user did not get (the refund policy).

fal bills per second of output at a rate for the endpoint, resolution and audio choice
(`FalPrice`, kept by staff from fal's model pages). It bills a video it rendered, also when
the user canceled it after fal started rendering, or when fal's content policy refused it
(/work/shared/fal.md section 3: billing of 422s is not confirmed by fal, so staff choose).
For those two reasons staff choose per reason whether the user is refunded (the default,
also when no `RefundPolicy` row exists), charged in full, or charged a share; any other
failure is always refunded. A charge never exceeds the generation's frozen quote.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from accounts.models import User
from generations.models import FalPrice, Generation, RefundPolicy
from veoproject import audit

logger = logging.getLogger(__name__)

Reason = RefundPolicy.Reason
Action = RefundPolicy.Action
Status = Generation.Status

USD_PLACES = Decimal("0.0001")

# The generations fal bills: the ones it rendered, whatever we then did with them.
BILLED_BY_FAL = (
    Q(status=Status.SUCCEEDED)
    | Q(status=Status.FAILED, error_code=Reason.CONTENT_POLICY)
    | Q(status=Status.CANCELED, started_at__isnull=False)
)


# --- What fal charges ----------------------------------------------------------------------


def fal_rate(*, endpoint: str, resolution: str, generate_audio: bool) -> Decimal | None:
    """USD per second of the active fal price, or None if staff keep none for these options."""
    return (
        FalPrice.objects.filter(
            endpoint=endpoint, resolution=resolution, generate_audio=generate_audio, active=True
        )
        .values_list("usd_per_second", flat=True)
        .first()
    )


def fal_cost_usd(generation: Generation) -> Decimal | None:
    """What fal charges for this generation's job: seconds x rate (None, and logged, if no
    price is active for its endpoint, resolution and audio)."""
    rate = fal_rate(
        endpoint=generation.endpoint,
        resolution=generation.resolution,
        generate_audio=generation.generate_audio,
    )
    if rate is None:
        logger.warning(
            "event=fal_price_missing generation=%s endpoint=%s resolution=%s audio=%s",
            generation.pk,
            generation.endpoint,
            generation.resolution,
            int(generation.generate_audio),
        )
        return None
    return (rate * generation.duration_seconds).quantize(USD_PLACES)


# --- Who pays for a video fal billed -------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """What the refund policy does with one generation's hold."""

    reason: str  # a RefundPolicy.Reason
    policy: str  # as recorded on the generation: "refund", "charge" or "share:<percent>"
    credits: int  # charged out of the hold; 0 = refund

    @property
    def ledger_reason(self) -> str:
        """The settlement entry's reason, in words the owner may read on their page."""
        action, _, percent = self.policy.partition(":")
        if not self.credits:
            return f"{self.reason}: refunded by policy"  # also a share that rounds to 0
        if action == Action.CHARGE:
            return f"{self.reason}: charged in full by policy (fal billed this video)"
        if action == Action.SHARE:
            return f"{self.reason}: charged {percent}% by policy (fal billed this video)"
        return f"{self.reason}: refunded by policy"


def policy_for(reason: str) -> RefundPolicy:
    """Staff's policy for a reason; refund when they set none."""
    return RefundPolicy.objects.filter(reason=reason).first() or RefundPolicy(
        reason=reason, action=Action.REFUND
    )


def charge_for(*, reason: str, cost_credits: int, policy: RefundPolicy | None = None) -> Charge:
    """The refund policy applied to a billed generation with a frozen quote of
    `cost_credits`."""
    policy = policy if policy is not None else policy_for(reason)
    credits = RefundPolicy.credits_to_charge(
        action=policy.action, percent=policy.share_percent, cost=cost_credits
    )
    return Charge(reason=reason, policy=policy.label, credits=min(credits, cost_credits))


def billed_cancel_reason(generation: Generation, *, by_owner: bool) -> str | None:
    """The policy reason for a cancel: only the owner's cancel after fal reported that it
    started rendering (`started_at`) is billed to them; a staff cancel never is."""
    if by_owner and generation.started_at is not None and generation.fal_request_id:
        return Reason.CANCELED_AFTER_START
    return None


def billed_failure_reason(code: str) -> str | None:
    """The policy reason for a failure code; None (always refunded) for any other code."""
    return Reason.CONTENT_POLICY if code == Reason.CONTENT_POLICY else None


# --- Staff edits (the admin calls these) ---------------------------------------------------


def _save_audited(*, obj, actor: User, reason: str, fields: tuple[str, ...], what: str) -> None:
    """Save a staff edit with who made it, and record before -> after and why."""
    reason = (reason or "").strip()
    with transaction.atomic():
        model = type(obj)
        before = model.objects.select_for_update().filter(pk=obj.pk).first() if obj.pk else None
        changes = [
            f"{field}: {getattr(before, field) if before else None} -> {getattr(obj, field)}"
            for field in fields
            if before is None or getattr(before, field) != getattr(obj, field)
        ]
        obj.updated_by = actor
        obj.save()
        audit.record(
            actor=actor,
            objects=[obj],
            action_flag=audit.ADDITION if before is None else audit.CHANGE,
            message=f"{what} {'created' if before is None else 'changed'}: "
            f"{', '.join(changes) or 'no change'}. Reason: {reason}"[:1000],
        )


def save_fal_price(*, price: FalPrice, actor: User, reason: str) -> None:
    """Save a fal price edited by staff; it applies to jobs submitted afterwards."""
    _save_audited(
        obj=price,
        actor=actor,
        reason=reason,
        fields=("endpoint", "resolution", "generate_audio", "usd_per_second", "active", "source"),
        what="fal price",
    )


def save_refund_policy(*, policy: RefundPolicy, actor: User, reason: str) -> None:
    """Save a refund policy edited by staff; it applies to generations settled afterwards."""
    _save_audited(
        obj=policy,
        actor=actor,
        reason=reason,
        fields=("reason", "action", "share_percent"),
        what="Refund policy",
    )
    # The 500 page repeats the words this process last read: this process says the new ones.
    from generations import refund_words  # it reads the policies through this module

    transaction.on_commit(refund_words.forget)
