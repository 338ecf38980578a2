"""The only code that moves credits.

Every operation posts one `LedgerEntry` and updates the cached `CreditAccount` in one
transaction, with a conditional UPDATE (``WHERE balance - reserved >= n``), so it is safe
under concurrency on PostgreSQL (the UPDATE takes the row lock and re-checks its condition)
and on SQLite (``BEGIN IMMEDIATE`` serialises writers).

Every operation is idempotent by key: calling it again with the same key returns the first
entry and moves nothing, also when two calls race (the unique key decides; the loser's
transaction is rolled back and it returns the winner's entry). A generation gets one hold
and then one settlement, capture or release, which share the key ``settle:<id>`` and a
partial unique constraint; callers compare ``entry.kind`` to learn which one won. A
settlement always closes the whole hold (its reserved change is minus the hold); a capture
spends all of it, or, under a refund policy that charges a share, part (`capture_part`).
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import CreditAccount, LedgerEntry, User, Voucher
from veoproject.amounts import is_nonzero, is_positive
from veoproject.exceptions import ApplicationError, InsufficientCredits, ValidationFailed

if TYPE_CHECKING:
    from generations.models import Generation

logger = logging.getLogger(__name__)

Kind = LedgerEntry.Kind


class LedgerError(ApplicationError):
    code = "ledger_error"


def _apply(
    *, user_id: int, amount: int, reserved_change: int, needed: int
) -> tuple[int, int, int] | None:
    """Move the cached numbers in one round trip (UPDATE ... RETURNING, which PostgreSQL
    and SQLite >= 3.35 both speak): (account id, balance, reserved) afterwards, or None
    if `needed` more credits are not available. The UPDATE takes the row lock and
    re-checks its condition, so concurrent movements never overdraw."""
    table = connection.ops.quote_name(CreditAccount._meta.db_table)
    sql = (
        f"UPDATE {table} SET balance = balance + %s, reserved = reserved + %s, "
        "updated_at = %s WHERE user_id = %s"
    )
    params = [
        amount,
        reserved_change,
        connection.ops.adapt_datetimefield_value(timezone.now()),
        user_id,
    ]
    if needed > 0:
        sql += " AND balance - reserved >= %s"
        params.append(needed)
    with connection.cursor() as cursor:
        cursor.execute(sql + " RETURNING id, balance, reserved", params)
        return cursor.fetchone()


def _post(
    *,
    user_id: int,
    kind: str,
    amount: int,
    reserved_change: int,
    idempotency_key: str,
    generation: Generation | None = None,
    voucher: Voucher | None = None,
    actor: User | None = None,
    reason: str = "",
    savepoint: bool = True,
) -> LedgerEntry:
    """Apply one movement and record it, or return the entry already recorded under
    `idempotency_key`. No path can leave less than zero available: the UPDATE's condition
    (and the CHECK constraints behind it) refuse it.

    `savepoint=False` saves two round trips for a caller whose own transaction makes the
    movement and its entry one unit: a clash then raises IntegrityError to that caller
    (its transaction is broken), instead of returning the earlier entry."""
    # available after = balance + amount - (reserved + reserved_change) >= 0
    needed = reserved_change - amount
    try:
        with transaction.atomic(savepoint=savepoint):
            applied = _apply(
                user_id=user_id, amount=amount, reserved_change=reserved_change, needed=needed
            )
            if applied is None:
                existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
                if existing is not None:  # done before: a repeat, not a shortfall
                    return existing
                account = CreditAccount.objects.get(user_id=user_id)
                raise InsufficientCredits(required=needed, available=account.available)
            account_id, balance, reserved = applied
            return LedgerEntry.objects.create(
                account_id=account_id,
                kind=kind,
                amount=amount,
                reserved_change=reserved_change,
                balance_after=balance,
                reserved_after=reserved,
                generation=generation,
                voucher=voucher,
                actor=actor,
                reason=reason[:500],
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        if not savepoint and transaction.get_connection().in_atomic_block:
            raise
        # The key was used before, or a race for it (or for the same settlement) was lost:
        # the savepoint undid this movement and the first entry stands.
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        raise


def _positive(amount: int) -> int:
    if not is_positive(amount):
        raise ValidationFailed("The amount must be a positive whole number of credits.")
    return amount


def grant(
    *,
    user: User,
    amount: int,
    reason: str,
    actor: User | None = None,
    kind: str = Kind.GRANT,
    voucher: Voucher | None = None,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """Add credits (a grant, a top-up, a voucher)."""
    if kind not in (Kind.GRANT, Kind.TOPUP):
        raise LedgerError("Only grants and top-ups add credits this way.")
    return _post(
        user_id=user.pk,
        kind=kind,
        amount=_positive(amount),
        reserved_change=0,
        idempotency_key=idempotency_key or f"{kind}:{uuid.uuid4()}",
        voucher=voucher,
        actor=actor,
        reason=reason,
    )


def adjust(
    *,
    user: User,
    amount: int,
    reason: str,
    actor: User | None = None,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """A correction, positive or negative. A deduction never takes credits that are
    reserved for generations in flight (InsufficientCredits instead)."""
    if not is_nonzero(amount):
        raise ValidationFailed("The amount must be a non-zero whole number of credits.")
    if not reason.strip():
        raise ValidationFailed("A correction needs a reason.", fields={"reason": ["Required."]})
    return _post(
        user_id=user.pk,
        kind=Kind.ADJUSTMENT,
        amount=amount,
        reserved_change=0,
        idempotency_key=idempotency_key or f"adjustment:{uuid.uuid4()}",
        actor=actor,
        reason=reason,
    )


def hold(*, generation: Generation, savepoint: bool = True) -> LedgerEntry:
    """Reserve the generation's frozen cost; InsufficientCredits if not available.
    `savepoint=False`: see `_post` (accept holds a generation it has just created)."""
    return _post(
        savepoint=savepoint,
        user_id=generation.owner_id,
        kind=Kind.HOLD,
        amount=0,
        reserved_change=_positive(generation.cost_credits),
        idempotency_key=f"hold:{generation.pk}",
        generation=generation,
    )


def _open_hold(generation: Generation) -> LedgerEntry:
    entry = LedgerEntry.objects.filter(generation=generation, kind=Kind.HOLD).first()
    if entry is None:
        raise LedgerError(f"Generation {generation.pk} has no hold to settle.")
    return entry


def capture(*, generation: Generation) -> LedgerEntry:
    """Spend the held credits. Returns the settlement entry, which is a release if the
    generation was already released (check `.kind`)."""
    held = _open_hold(generation).reserved_change
    return _post(
        user_id=generation.owner_id,
        kind=Kind.CAPTURE,
        amount=-held,
        reserved_change=-held,
        idempotency_key=f"settle:{generation.pk}",
        generation=generation,
    )


def capture_part(*, generation: Generation, credits: int, reason: str) -> LedgerEntry:
    """Spend `credits` of the hold and free the rest, in one settlement: a capture entry
    of (-credits, -held), so a generation still has exactly one settlement and its hold is
    closed whole. For a video fal billed but the user did not get, when the refund policy
    charges it in full or a share. Never more than the hold (the frozen quote): LedgerError.
    Returns the settlement entry, which is a release (or an earlier capture) if the
    generation was already settled (check `.kind`)."""
    held = _open_hold(generation).reserved_change
    if _positive(credits) > held:
        raise LedgerError(
            f"Generation {generation.pk}: cannot charge {credits} credits of a {held}-credit hold."
        )
    return _post(
        user_id=generation.owner_id,
        kind=Kind.CAPTURE,
        amount=-credits,
        reserved_change=-held,
        idempotency_key=f"settle:{generation.pk}",
        generation=generation,
        reason=reason,
    )


def release(*, generation: Generation, reason: str = "") -> LedgerEntry:
    """Give the held credits back. Returns the settlement entry, which is a capture if the
    generation was already captured (check `.kind`)."""
    held = _open_hold(generation).reserved_change
    return _post(
        user_id=generation.owner_id,
        kind=Kind.RELEASE,
        amount=0,
        reserved_change=-held,
        idempotency_key=f"settle:{generation.pk}",
        generation=generation,
        reason=reason,
    )


def refund(*, generation: Generation, reason: str, actor: User | None = None) -> LedgerEntry:
    """Give back what a generation captured, once."""
    captured = LedgerEntry.objects.filter(generation=generation, kind=Kind.CAPTURE).first()
    if captured is None:
        raise LedgerError("Only a generation that was paid for can be refunded.")
    if not reason.strip():
        raise ValidationFailed("A refund needs a reason.", fields={"reason": ["Required."]})
    return _post(
        user_id=generation.owner_id,
        kind=Kind.REFUND,
        amount=-captured.amount,
        reserved_change=0,
        idempotency_key=f"refund:{generation.pk}",
        generation=generation,
        actor=actor,
        reason=reason,
    )


def broken_accounts() -> list[dict]:
    """Accounts whose cached balance or reserved disagree with their ledger.

    balance == sum of all amounts; reserved == sum of reserved changes == the holds that
    have no settlement yet. One aggregate query per check, whatever the number of users.
    """
    sums = CreditAccount.objects.annotate(
        ledger_balance=Coalesce(Sum("entries__amount"), 0),
        ledger_reserved=Coalesce(Sum("entries__reserved_change"), 0),
    ).values("id", "user__username", "balance", "reserved", "ledger_balance", "ledger_reserved")
    settled = LedgerEntry.objects.filter(
        generation=OuterRef("generation"), kind__in=[Kind.CAPTURE, Kind.RELEASE]
    )
    holds = dict(
        LedgerEntry.objects.filter(kind=Kind.HOLD)
        .exclude(Exists(settled))
        .values("account_id")
        .annotate(total=Sum("reserved_change"))
        .values_list("account_id", "total")
    )
    broken = []
    for row in sums:
        row["open_holds"] = holds.get(row["id"], 0)
        if not (
            row["balance"] == row["ledger_balance"]
            and row["reserved"] == row["ledger_reserved"] == row["open_holds"]
            and row["balance"] >= row["reserved"] >= 0
        ):
            broken.append(row)
    return broken
