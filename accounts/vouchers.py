"""Credit vouchers: staff create codes, users redeem them for credits.

A code credits a user at most once and never more users than its `max_uses`, also when
redeemed concurrently: the use is counted by a conditional UPDATE (``uses = uses + 1 WHERE
uses < max_uses AND not expired``, which takes the row lock on PostgreSQL and re-checks its
condition), the grant's idempotency key is ``voucher:<voucher id>:<user id>`` and
``VoucherRedemption`` is unique per (voucher, user); all three happen in one transaction, so
a redemption that loses any race leaves nothing behind.

Codes are stored upper-case without separators; users may type them in any case, with
spaces or dashes. Generated codes use an alphabet without look-alike characters (no 0/O,
1/I/L), shown in groups of four: ``7KQP-M2XD-HV9R``.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts import ledger
from accounts.models import LedgerEntry, User, Voucher, VoucherRedemption
from accounts.selectors import CreditSummary, credit_summary
from veoproject import audit
from veoproject.amounts import is_positive, is_whole
from veoproject.exceptions import ApplicationError, ValidationFailed
from veoproject.model_fields import max_length

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 12  # 31**12 ~ 8e17 codes: guessing one is hopeless at any throttled rate
CUSTOM_CODE_MIN_LENGTH = 6
MAX_BATCH = 1000
_CODE_MAX_LENGTH = max_length(Voucher, "code")


class VoucherError(ApplicationError):
    code = "voucher_invalid"
    default_message = gettext_lazy("This code is not valid.")


class VoucherInvalid(VoucherError):
    """Unknown code (also said for malformed input, so nothing is learned from it)."""


class VoucherExpired(VoucherError):
    code = "voucher_expired"
    default_message = gettext_lazy("This code has expired.")


class VoucherUsedUp(VoucherError):
    code = "voucher_used_up"
    http_status = 409
    default_message = gettext_lazy(
        "This code has already been redeemed as many times as it allows."
    )


class VoucherAlreadyRedeemed(VoucherError):
    code = "voucher_already_redeemed"
    http_status = 409
    default_message = gettext_lazy("You have already redeemed this code.")


def normalize_code(raw: str) -> str:
    """What a user typed -> the stored form: NFKC, upper case, separators removed."""
    text = unicodedata.normalize("NFKC", raw or "").upper()
    return re.sub(r"[\s\-_.]", "", text)


def format_code(code: str) -> str:
    """A generated code in groups of four for display (custom codes stay as they are)."""
    if len(code) == CODE_LENGTH and all(ch in CODE_ALPHABET for ch in code):
        return "-".join(code[i : i + 4] for i in range(0, CODE_LENGTH, 4))
    return code


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def create_vouchers(
    *,
    amount: int,
    actor: User,
    count: int = 1,
    max_uses: int = 1,
    expires_at: datetime | None = None,
    note: str = "",
    code: str = "",
) -> list[Voucher]:
    """Create `count` vouchers worth `amount` credits each, each redeemable by up to
    `max_uses` users until `expires_at`. `code` sets a chosen code (only with count=1);
    otherwise codes are random."""
    errors: dict[str, list[str]] = {}
    if not is_positive(amount):
        errors["amount"] = ["Must be a positive whole number of credits."]
    if not is_positive(max_uses):
        errors["max_uses"] = ["Must be at least 1."]
    if not is_whole(count) or not 1 <= count <= MAX_BATCH:
        errors["count"] = [f"Between 1 and {MAX_BATCH}."]
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["Must be in the future."]
    code = normalize_code(code)
    if code:
        if count != 1:
            errors["code"] = ["A chosen code is for a single voucher."]
        elif not re.fullmatch(r"[A-Z0-9]+", code) or not (
            CUSTOM_CODE_MIN_LENGTH <= len(code) <= _CODE_MAX_LENGTH
        ):
            errors["code"] = [
                f"Use {CUSTOM_CODE_MIN_LENGTH} to {_CODE_MAX_LENGTH} letters and digits."
            ]
        elif Voucher.objects.filter(code=code).exists():
            errors["code"] = ["This code exists already."]
    if errors:
        raise ValidationFailed("Some fields are invalid.", fields=errors)

    created: list[Voucher] = []
    with transaction.atomic():
        for _ in range(count):
            for _attempt in range(5):
                try:
                    with transaction.atomic():
                        voucher = Voucher.objects.create(
                            code=code or new_code(),
                            amount=amount,
                            max_uses=max_uses,
                            expires_at=expires_at,
                            note=note.strip()[:200],
                            created_by=actor,
                        )
                    break
                except IntegrityError:
                    if code:  # a chosen code taken meanwhile
                        raise ValidationFailed(
                            "This code exists already.",
                            fields={"code": ["This code exists already."]},
                        ) from None
            else:  # pragma: no cover - five collisions in 8e17
                raise ApplicationError("Could not draw a unique code; try again.")
            created.append(voucher)
        audit.record(
            actor=actor,
            objects=created,
            action_flag=audit.ADDITION,
            message=f"Created voucher worth {amount} credits, {max_uses} use(s)"
            + (f": {note.strip()}" if note.strip() else ""),
        )
    return created


@dataclass(frozen=True)
class Redemption:
    voucher: Voucher
    entry: LedgerEntry
    credits: CreditSummary


def redeem(*, user: User, code: str) -> Redemption:
    """Credit `user` with the voucher's amount, once per user and within its uses.

    Raises VoucherInvalid (unknown code), VoucherExpired, VoucherUsedUp or
    VoucherAlreadyRedeemed; nothing is counted or credited then.
    """
    normalized = normalize_code(code)
    if not normalized or len(normalized) > _CODE_MAX_LENGTH:
        raise VoucherInvalid()
    voucher = Voucher.objects.filter(code=normalized).first()
    if voucher is None:
        raise VoucherInvalid()
    if VoucherRedemption.objects.filter(voucher=voucher, user=user).exists():
        raise VoucherAlreadyRedeemed()
    try:
        with transaction.atomic():
            now = timezone.now()
            counted = (
                Voucher.objects.filter(pk=voucher.pk, uses__lt=F("max_uses"))
                .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
                .update(uses=F("uses") + 1)
            )
            if not counted:
                voucher.refresh_from_db()
                if voucher.expires_at is not None and voucher.expires_at <= now:
                    raise VoucherExpired()
                raise VoucherUsedUp()
            entry = ledger.grant(
                user=user,
                amount=voucher.amount,
                reason=f"Voucher {format_code(voucher.code)}",
                voucher=voucher,
                idempotency_key=f"voucher:{voucher.pk}:{user.pk}",
            )
            # Fails (unique voucher+user, unique entry) when a concurrent redemption by the
            # same user won: the whole transaction, use count included, rolls back.
            VoucherRedemption.objects.create(voucher=voucher, user=user, entry=entry)
    except IntegrityError:
        raise VoucherAlreadyRedeemed() from None
    voucher.refresh_from_db()
    return Redemption(voucher=voucher, entry=entry, credits=credit_summary(user=user))


def expire_vouchers(*, vouchers: list[Voucher], actor: User) -> int:
    """Make vouchers unredeemable from now on (uses already made stand)."""
    now = timezone.now()
    expired = []
    with transaction.atomic():
        for voucher in vouchers:
            if (
                Voucher.objects.filter(pk=voucher.pk)
                .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
                .update(expires_at=now)
            ):
                expired.append(voucher)
        audit.record(
            actor=actor, objects=expired, action_flag=audit.CHANGE, message="Expired by staff"
        )
    return len(expired)
