"""Final states and the money that goes with them: succeed (capture), fail and cancel
(release), each a `states.transition` from the statuses the table allows.

A failure fal still bills (content policy) and the owner's cancel after fal started
rendering are settled by staff's refund policy (`generations.costs`): released, or
captured in full or in part, in the one settlement; the generation records the policy."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from django.db import transaction

from accounts import ledger
from accounts.models import LedgerEntry, User
from generations import costs, fair_share, states
from generations.dispatch import enqueue
from generations.fal import user_message
from generations.models import Generation, RefundPolicy
from notifications import services as notifications
from veoproject.exceptions import (
    InvalidTransition,
)

logger = logging.getLogger(__name__)

Status = Generation.Status


def _after_final(generation: Generation, *, notify_owner: bool = True) -> None:
    fair_share.slot_freed()  # its slot at fal, if it held one, goes to the next in line
    if notify_owner:  # "your video is ready" / "could not be made", emailed after commit
        notifications.generation_finished(generation_id=generation.pk)
    if generation.callback_url:
        from generations.callbacks import enqueue_callback

        transaction.on_commit(lambda: enqueue_callback(generation=generation))


def _settle_billed(generation: Generation, *, billed: str, policy: RefundPolicy) -> LedgerEntry:
    """Settle a generation fal billed by the refund policy for `billed`: release, or
    capture all or a share of the hold (never more than the frozen quote)."""
    charge = costs.charge_for(reason=billed, cost_credits=generation.cost_credits, policy=policy)
    if charge.credits:
        entry = ledger.capture_part(
            generation=generation, credits=charge.credits, reason=charge.ledger_reason
        )
    else:
        entry = ledger.release(generation=generation, reason=charge.ledger_reason)
    logger.info(
        "event=refund_policy_applied generation=%s reason=%s policy=%s charged=%s",
        generation.pk,
        billed,
        charge.policy,
        charge.credits,
    )
    return entry


FAL_LOG_LINES = 20  # the generation's fal log keeps fal's last lines (admin only)


def fail(*, generation_id: UUID, code: str, message: str, raw: str = "") -> bool:
    """Fail an in-flight generation and release its hold (or settle it by the refund
    policy when fal bills the failure). False if it already ended.

    `message` is what the owner reads: our own words. `raw`, fal's own words behind the
    failure if any, goes to the generation's fal log (staff only). A failure fal reported
    goes through `fail_for_fal`, which chooses the message."""
    billed = costs.billed_failure_reason(code)
    policy = costs.policy_for(billed) if billed else None
    with transaction.atomic():
        fields: dict[str, Any] = {"settlement_policy": policy.label} if policy is not None else {}
        if raw and raw != message:
            earlier = Generation.objects.filter(pk=generation_id).values_list("fal_logs", flat=True)
            kept = list(earlier.first() or [])[-(FAL_LOG_LINES - 1) :]
            fields["fal_logs"] = [*kept, f"[{code}] {raw[:500]}"]
        if not states.transition(
            generation_id,
            to=Status.FAILED,
            error_code=code[:40],
            error_message=message[:2000],
            **fields,
        ):
            return False
        generation = Generation.objects.get(pk=generation_id)
        if billed and policy is not None:  # a policy exactly when billed
            _settle_billed(generation, billed=billed, policy=policy)
        else:
            ledger.release(generation=generation, reason=code)
        _after_final(generation)
    logger.info("event=generation_failed generation=%s code=%s", generation_id, code)
    return True


def fail_for_fal(
    *,
    generation_id: UUID,
    code: str,
    raw: str,
    message: str | None = None,
    event: str = "fal_job_failed",
) -> bool:
    """Fail a generation for what fal reported (a poll, a webhook, a refused submit): the
    one place that turns fal's words into what a user reads.

    Users read `user_message(code, raw)`: fal's words only when they are about the user's
    input (invalid input, content policy), else a plain sentence; never keys, billing or
    "User is locked". `message` overrides it only with a sentence already chosen that way
    (a `FalError`'s message). fal's raw words are logged (`event`) and kept in the
    generation's fal log for staff."""
    shown = message if message is not None else user_message(code, raw)
    logger.warning("event=%s generation=%s code=%s raw=%r", event, generation_id, code, raw[:500])
    return fail(generation_id=generation_id, code=code, message=shown, raw=raw)


def succeed(*, generation: Generation, video_name: str, video_bytes: int) -> bool:
    """Record the stored video and capture the hold. False if the generation ended
    meanwhile (canceled, failed): the caller deletes the copy it made."""
    with transaction.atomic():
        if not states.transition(
            generation.pk,
            to=Status.SUCCEEDED,
            video=video_name,
            video_bytes=video_bytes,
            error_code="",
            error_message="",
            fal_queue_position=None,
        ):
            return False
        generation.refresh_from_db()
        ledger.capture(generation=generation)
        _after_final(generation)
    logger.info("event=generation_succeeded generation=%s", generation.pk)
    return True


def cancel(*, generation: Generation, actor: User | None = None) -> Generation:
    """Cancel a generation that fal has not started rendering; its hold is released at
    once. A job already on fal's queue is canceled there too (after commit). Should fal
    have reported that it started, the owner's cancel is settled by the refund policy."""
    by = "staff" if actor is not None and actor.pk != generation.owner_id else "you"
    message = "Canceled by staff." if by == "staff" else "Canceled at your request."
    with transaction.atomic():
        changed = states.transition(
            generation.pk,
            to=Status.CANCELED,
            error_code="canceled",
            error_message=message,
        )
        if not changed:
            generation.refresh_from_db()
            raise InvalidTransition(f"A {generation.public_status} generation cannot be canceled.")
        generation.refresh_from_db()
        billed = costs.billed_cancel_reason(generation, by_owner=by == "you")
        if billed:
            policy = costs.policy_for(billed)
            _settle_billed(generation, billed=billed, policy=policy)
            generation.settlement_policy = policy.label
            Generation.objects.filter(pk=generation.pk).update(
                settlement_policy=generation.settlement_policy
            )
        else:
            ledger.release(generation=generation, reason="canceled")
        if generation.fal_request_id:
            request_id = generation.fal_request_id
            transaction.on_commit(lambda: enqueue("cancel_on_fal", request_id))
        _after_final(generation, notify_owner=by == "staff")  # the owner knows already
    logger.info("event=generation_canceled generation=%s by=%s", generation.pk, by)
    return generation
