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

Credits taken back after a refunded or disputed purchase (`take_back`) leave the balance
as far as they are available; the rest is recorded as `CreditAccount.owed`, which the next
credits in (`grant`) pay first and which refuses new holds (`hold`: CreditsOwed).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import CreditAccount, LedgerEntry, Purchase, User, Voucher
from veoproject.amounts import is_nonzero, is_positive
from veoproject.exceptions import (
    ApplicationError,
    CreditsOwed,
    InsufficientCredits,
    ValidationFailed,
)

if TYPE_CHECKING:
    from generations.models import Generation

logger = logging.getLogger(__name__)

Kind = LedgerEntry.Kind


class LedgerError(ApplicationError):
    code = "ledger_error"


def _move_and_record(
    entry: LedgerEntry,
    *,
    user_id: int,
    needed: int,
    unless_owed: bool = False,
) -> int | None:
    """Move the account's cached numbers by `entry`'s amount and reserved change and record
    `entry` (unsaved; its account and numbers after are filled in here): the account's
    `owed` afterwards, or None, with nothing moved or recorded, if `needed` more credits are
    not available (or, with `unless_owed`, credits are owed).

    The UPDATE takes the row lock and re-checks its condition, so concurrent movements
    never overdraw. On PostgreSQL the UPDATE and the entry's INSERT are one statement (the
    UPDATE in a CTE, the INSERT reading what it returned): one round trip. Elsewhere
    (SQLite) they are two: UPDATE ... RETURNING, then the INSERT."""
    now = timezone.now()
    table = connection.ops.quote_name(CreditAccount._meta.db_table)
    update = (
        f"UPDATE {table} SET balance = balance + %s, reserved = reserved + %s, "
        "updated_at = %s WHERE user_id = %s"
    )
    params: list = [
        entry.amount,
        entry.reserved_change,
        connection.ops.adapt_datetimefield_value(now),
        user_id,
    ]
    if needed > 0:
        update += " AND balance - reserved >= %s"
        params.append(needed)
    if unless_owed:
        update += " AND owed = 0"
    update += " RETURNING id, balance, reserved, owed"
    entry.created_at = now
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(update, params)
            moved = cursor.fetchone()
        if moved is None:
            return None
        entry.account_id, entry.balance_after, entry.reserved_after, owed = moved
        entry.save(force_insert=True)
        return owed
    columns = [
        "kind",
        "amount",
        "reserved_change",
        "generation_id",
        "voucher_id",
        "actor_id",
        "reason",
        "idempotency_key",
        "created_at",
    ]
    values: list = [
        entry.kind,
        entry.amount,
        entry.reserved_change,
        entry.generation_id,
        entry.voucher_id,
        entry.actor_id,
        entry.reason,
        entry.idempotency_key,
        connection.ops.adapt_datetimefield_value(now),
    ]
    quote = connection.ops.quote_name
    sql = (
        f"WITH moved AS ({update}) "
        f"INSERT INTO {quote(LedgerEntry._meta.db_table)} "
        f"(account_id, balance_after, reserved_after, {', '.join(map(quote, columns))}) "
        f"SELECT id, balance, reserved, {', '.join(['%s'] * len(values))} FROM moved "
        "RETURNING id, account_id, balance_after, reserved_after, (SELECT owed FROM moved)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *values])
        recorded = cursor.fetchone()
    if recorded is None:
        return None
    entry.pk, entry.account_id, entry.balance_after, entry.reserved_after, owed = recorded
    entry._state.adding = False
    entry._state.db = connection.alias
    return owed


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
    unless_owed: bool = False,
) -> LedgerEntry:
    """Apply one movement and record it, or return the entry already recorded under
    `idempotency_key`. No path can leave less than zero available: the UPDATE's condition
    (and the CHECK constraints behind it) refuse it. `unless_owed`: refused (CreditsOwed)
    while the account owes credits, checked by the same UPDATE.

    `savepoint=False` saves two round trips for a caller whose own transaction makes the
    movement and its entry one unit: a clash then raises IntegrityError to that caller
    (its transaction is broken), instead of returning the earlier entry."""
    # available after = balance + amount - (reserved + reserved_change) >= 0
    needed = reserved_change - amount
    try:
        with transaction.atomic(savepoint=savepoint):
            entry = LedgerEntry(
                kind=kind,
                amount=amount,
                reserved_change=reserved_change,
                generation=generation,
                voucher=voucher,
                actor=actor,
                reason=reason[:500],
                idempotency_key=idempotency_key,
            )
            owed = _move_and_record(entry, user_id=user_id, needed=needed, unless_owed=unless_owed)
            if owed is None:
                existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
                if existing is not None:  # done before: a repeat, not a shortfall
                    return existing
                account = CreditAccount.objects.get(user_id=user_id)
                if unless_owed and account.owed > 0:
                    raise CreditsOwed(owed=account.owed)
                raise InsufficientCredits(required=needed, available=account.available)
            if owed and amount - reserved_change > 0:
                # Credits came in (a grant, a release, a refund) while some are owed after
                # a refunded or disputed purchase: they pay that debt first.
                _pay_debt(user_id=user_id, key=idempotency_key)
            return entry
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
    """Add credits (a grant, a top-up, a voucher). Credits owed on the account (see
    `take_back`) are paid from them first, in the same transaction (`_post`)."""
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
    """Reserve the generation's frozen cost; InsufficientCredits if not available,
    CreditsOwed while the account owes credits (see `take_back`). `savepoint=False`: see
    `_post` (accept holds a generation it has just created)."""
    return _post(
        savepoint=savepoint,
        unless_owed=True,
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


@dataclass(frozen=True)
class TakenBack:
    """What `take_back` did: `taken` credits left the balance (in `entry`), `owed` more
    were recorded as owed. `repeated`: the key was used before; nothing moved now."""

    entry: LedgerEntry
    taken: int
    owed: int
    repeated: bool = False


def _lock_account(user_id: int) -> CreditAccount:
    """The account row, locked until the transaction ends (PostgreSQL; SQLite's
    BEGIN IMMEDIATE has already serialised writers)."""
    return CreditAccount.objects.select_for_update().get(user_id=user_id)


def take_back(*, user: User, credits: int, reason: str, idempotency_key: str) -> TakenBack:
    """Take back credits a user was sold (a refunded or disputed purchase): as many as are
    available now leave the balance (one adjustment entry of minus that many, zero
    included, so the account's history shows the event); the rest, already spent, is
    added to the account's `owed`. Credits reserved for generations in flight are never
    taken. Idempotent by key: the account row is locked while the key is checked, so a
    repeat, racing or late, returns the first entry with `repeated=True` and moves
    nothing."""
    _positive(credits)
    with transaction.atomic():
        account = _lock_account(user.pk)
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return TakenBack(entry=existing, taken=0, owed=0, repeated=True)
        taken = max(0, min(credits, account.available))
        owed = credits - taken
        entry = _post(
            user_id=user.pk,
            kind=Kind.ADJUSTMENT,
            amount=-taken,
            reserved_change=0,
            idempotency_key=idempotency_key,
            reason=(f"{reason} ({owed} already spent: owed)" if owed else reason),
            savepoint=False,
        )
        if owed:
            CreditAccount.objects.filter(pk=account.pk).update(owed=F("owed") + owed)
    logger.info(
        "event=credits_taken_back user=%s taken=%s owed=%s key=%s",
        user.pk,
        taken,
        owed,
        idempotency_key,
    )
    return TakenBack(entry=entry, taken=taken, owed=owed)


def _pay_debt(*, user_id: int, key: str) -> LedgerEntry | None:
    """Pay what the account owes from its available credits, once per `key` (the entry
    that brought the credits in). Called by `_post` inside its transaction, whose UPDATE
    already holds the account row."""
    account = _lock_account(user_id)
    pay = min(account.owed, account.available)
    debt_key = f"debt:{key}"
    if pay <= 0 or LedgerEntry.objects.filter(idempotency_key=debt_key).exists():
        return None
    entry = _post(
        user_id=user_id,
        kind=Kind.ADJUSTMENT,
        amount=-pay,
        reserved_change=0,
        idempotency_key=debt_key,
        reason=f"Pays {pay} of the {account.owed} credits owed after a refund or dispute",
        savepoint=False,
    )
    CreditAccount.objects.filter(pk=account.pk).update(owed=F("owed") - pay)
    _purchases_follow_debt(user_id=user_id, owed=account.owed - pay)
    logger.info("event=credits_owed_paid user=%s paid=%s", user_id, pay)
    return entry


def lock_account(*, user_id: int) -> None:
    """Lock the user's credit account until the transaction ends, for a caller that is
    about to lock rows the ledger also locks while holding the account (purchases: see
    `_purchases_follow_debt`): the account first, always."""
    list(CreditAccount.objects.select_for_update().filter(user_id=user_id).values_list("pk"))


def _purchases_follow_debt(*, user_id: int, owed: int) -> None:
    """Lower what the user's purchases still owe, oldest first, until together they owe
    `owed`, the account's debt now: each credit paid moves from the purchase's
    `credits_owed` to its `credits_taken_back` (taken back after all, from later credits),
    so its reversed total, which Stripe's events are compared with, stays the same.
    Purchases are not balances; this keeps them equal to the one that is, at every commit
    (`broken_accounts` checks it).

    Called inside the transaction that lowered the account's `owed`, whose UPDATE holds
    the account row: every writer of a purchase's reversal holds that row first
    (`accounts.payments.fulfilment` locks the account before the purchase), so the
    purchases, locked here in pk order, never deadlock with a webhook."""
    excess = -owed
    owing = list(
        Purchase.objects.select_for_update()
        .filter(user_id=user_id, credits_owed__gt=0)
        .order_by("pk")
        .only("pk", "credits_owed")
    )
    excess += sum(purchase.credits_owed for purchase in owing)
    for purchase in owing:
        if excess <= 0:
            break
        paid = min(purchase.credits_owed, excess)
        Purchase.objects.filter(pk=purchase.pk).update(
            credits_owed=F("credits_owed") - paid,
            credits_taken_back=F("credits_taken_back") + paid,
            updated_at=timezone.now(),
        )
        excess -= paid


def credits_owed(*, user: User) -> int:
    return CreditAccount.objects.filter(user_id=user.pk).values_list("owed", flat=True).first() or 0


def reversal_key(*, purchase_id: int, target: int) -> str:
    """The key of the `take_back` that brings a purchase's reversed credits to `target`."""
    return f"purchase:{purchase_id}:reversed:{target}"


def reinstatement_key(*, purchase_id: int, target: int) -> str:
    """The key of the adjustment that gives back a won dispute's credits, down to `target`."""
    return f"purchase:{purchase_id}:reinstated:{target}"


# The entries that move credits for a purchase's reversal, by the keys above and `_pay_debt`'s.
_REVERSED = Q(entries__idempotency_key__regex=r"^purchase:[0-9]+:reversed:[0-9]+$")
_REINSTATED = Q(entries__idempotency_key__regex=r"^purchase:[0-9]+:reinstated:[0-9]+$")
_DEBT_PAID = Q(entries__idempotency_key__startswith="debt:")


def _purchases_sum(field: str) -> Coalesce:
    per_user = (
        Purchase.objects.filter(user_id=OuterRef("user_id"))
        .order_by()
        .values("user_id")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(per_user), 0)


def _adjusted(where: Q) -> Coalesce:
    return Coalesce(Sum("entries__amount", filter=Q(entries__kind=Kind.ADJUSTMENT) & where), 0)


def broken_accounts() -> list[dict]:
    """Accounts whose cached numbers disagree with their ledger (and their purchases).

    balance == sum of all amounts; reserved == sum of reserved changes == the holds that
    have no settlement yet; owed == what the user's purchases still owe
    (`purchases_owed`) == `ledger_owed`: the credits the purchases have reversed
    (`credits_taken_back + credits_owed`, Stripe's refunds and disputes) less those the
    ledger moved for them (taken back, plus debt paid, less won disputes given back).
    The entries alone cannot say what is owed: a take-back posts only the part it took.
    One aggregate query per check, whatever the number of users.
    """
    sums = CreditAccount.objects.annotate(
        ledger_balance=Coalesce(Sum("entries__amount"), 0),
        ledger_reserved=Coalesce(Sum("entries__reserved_change"), 0),
        purchases_owed=_purchases_sum("credits_owed"),
        purchases_taken_back=_purchases_sum("credits_taken_back"),
        moved_for_reversals=-_adjusted(_REVERSED | _DEBT_PAID) - _adjusted(_REINSTATED),
    ).values(
        "id",
        "user__username",
        "balance",
        "reserved",
        "owed",
        "ledger_balance",
        "ledger_reserved",
        "purchases_owed",
        "purchases_taken_back",
        "moved_for_reversals",
    )
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
        reversed_credits = row.pop("purchases_taken_back") + row["purchases_owed"]
        row["ledger_owed"] = reversed_credits - row.pop("moved_for_reversals")
        if not (
            row["balance"] == row["ledger_balance"]
            and row["reserved"] == row["ledger_reserved"] == row["open_holds"]
            and row["balance"] >= row["reserved"] >= 0
            and row["owed"] == row["purchases_owed"] == row["ledger_owed"] >= 0
        ):
            broken.append(row)
    return broken
