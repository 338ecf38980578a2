"""The low-balance email: once when a user's available credits fall below their threshold,
and not again until credits added (a top-up, a grant, a voucher, a refund) have lifted the
available balance to the threshold once more.

Only a hold lowers the available balance on the way to a video (a capture spends what
the hold already set aside, a release gives it back), so accept calls `after_hold`. It
costs accept no query inside its transaction: the hold's ledger entry says what is
available, and the user's switches are read after commit (kept LOCAL_CACHE_SECONDS per
process, `veoproject.local_cache`); only when the threshold is crossed is a task
enqueued. That read only decides whether to enqueue: the task reads the switches again
and decides, so switches a few seconds stale in another process at worst let one accept
pass without a check (the next one after the change checks). The task
(`check_low_balance`) decides from the ledger, which is append-only and records the
available balance after every movement: whether credits added since the last warning
re-armed it needs no hook on the ways credits come in.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import CreditAccount, LedgerEntry, User
from generations.pricing import Rates
from notifications import delivery
from notifications.models import NotificationPreference, SentEmail
from notifications.preferences import default_low_balance_threshold, preferences_for, threshold_for
from notifications.tasks import enqueue
from veoproject import languages
from veoproject.local_cache import LocalCache

logger = logging.getLogger(__name__)


def after_hold(*, user_id: int, entry: LedgerEntry, rates: Rates) -> None:
    """Call inside the transaction that placed hold `entry`: after commit, one read of the
    user's switches, and a check task only if the balance is below their threshold."""
    available = entry.balance_after - entry.reserved_after
    default = default_low_balance_threshold(rates=rates)  # from memory: no query
    transaction.on_commit(lambda: _enqueue_if_low(user_id, available, default), robust=True)


# Each user's (low_balance_emails, low_balance_threshold), as this process last read them.
_switches: LocalCache[tuple[bool, int | None]] = LocalCache(
    "low_balance_switches", invalidated_by=[NotificationPreference]
)


def _read_switches(user_id: int) -> tuple[bool, int | None]:
    row = (
        NotificationPreference.objects.filter(user_id=user_id)
        .values_list("low_balance_emails", "low_balance_threshold")
        .first()
    )
    return row if row is not None else (True, None)


def _enqueue_if_low(user_id: int, available: int, default_threshold: int) -> None:
    wanted, threshold = _switches.get(user_id, lambda: _read_switches(user_id))
    if threshold is None:
        threshold = default_threshold
    if wanted and available < threshold:
        enqueue("low_balance", user_id)


def _rearmed_by(*, account: CreditAccount, since: SentEmail, threshold: int) -> LedgerEntry | None:
    """The first entry since warning `since` that added credits and left at least
    `threshold` available: from then on the user may be warned again."""
    return (
        LedgerEntry.objects.filter(account=account, pk__gt=since.ledger_entry_id, amount__gt=0)
        .alias(available_after=F("balance_after") - F("reserved_after"))
        .filter(available_after__gte=threshold)
        .order_by("pk")
        .first()
    )


def check_low_balance(*, user_id: int) -> bool:
    """Warn the user if their available balance is below their threshold and they were
    not warned since credits last lifted it back (at most one open warning per user: a
    unique constraint). False when nothing was sent."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    account = CreditAccount.objects.filter(user_id=user_id).first()
    if user is None or account is None or not user.email:
        return False
    preference = preferences_for(user)
    threshold = threshold_for(preference)
    if not preference.low_balance_emails or account.available >= threshold:
        return False
    latest = LedgerEntry.objects.filter(account=account).order_by("-pk").first()
    if latest is None:
        return False
    try:
        with transaction.atomic():
            warned = (
                SentEmail.objects.select_for_update()
                .filter(user=user, kind=SentEmail.Kind.LOW_BALANCE, rearmed_at__isnull=True)
                .first()
            )
            if warned is not None:
                lifted = _rearmed_by(account=account, since=warned, threshold=threshold)
                if lifted is None:
                    return False  # warned already, and the balance has stayed low
                warned.rearmed_at = lifted.created_at
                warned.save(update_fields=["rearmed_at"])
            claimed = SentEmail.objects.create(
                user=user,
                kind=SentEmail.Kind.LOW_BALANCE,
                to=user.email,
                ledger_entry=latest,
                available=account.available,
                threshold=threshold,
            )
    except IntegrityError:
        return False  # a parallel check warned first
    with translation.override(languages.for_recipient(user)):
        message = delivery.build(
            template="low_balance",
            to=user.email,
            user_id=user.pk,
            topic="low_balance",
            context={
                "user": user,
                "available": account.available,
                "threshold": threshold,
                "credits_url": delivery.site_url(reverse("credits")),
                "checked_at": timezone.now(),
            },
        )
    delivery.send(claimed, message)
    return True
