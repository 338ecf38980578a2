"""What a test reads of a user's credits and of a generation's ledger entries."""

from __future__ import annotations

from accounts.models import CreditAccount, LedgerEntry
from generations.models import Generation


def numbers(user) -> tuple[int, int]:
    """The user's (balance, reserved)."""
    account = CreditAccount.objects.get(user=user)
    return account.balance, account.reserved


def kinds(generation: Generation) -> list[str]:
    """The kinds of the generation's ledger entries, oldest first."""
    return list(
        LedgerEntry.objects.filter(generation=generation)
        .order_by("id")
        .values_list("kind", flat=True)
    )
