"""`grant_credits <username> <amount> --reason TEXT`: add credits, or correct them.

A positive amount is a grant; a negative one is an adjustment, which never takes credits
that are reserved for generations in flight. The rules live in `accounts.ledger`.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import ledger
from accounts.models import CreditAccount, LedgerEntry, User
from veoproject.exceptions import ApplicationError, InsufficientCredits


class Command(BaseCommand):
    help = (
        "Grant credits to a user (positive amount) or correct their balance (negative "
        "amount, never below what is reserved). Every change is a ledger entry."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("amount", type=int, help="whole credits; negative to deduct")
        parser.add_argument(
            "--reason", required=True, help="why (kept on the ledger entry, required)"
        )
        parser.add_argument(
            "--idempotency-key",
            default=None,
            help="a key that makes re-running the same command a no-op",
        )

    def handle(self, *args, username: str, amount: int, reason: str, **options) -> None:
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if amount == 0:
            raise CommandError("The amount must not be zero.")
        if not reason.strip():
            raise CommandError("--reason must not be blank.")

        key = options["idempotency_key"]
        if key:
            key = f"cmd:{key}"
        replay = bool(key) and LedgerEntry.objects.filter(idempotency_key=key).exists()
        try:
            if amount > 0:
                entry = ledger.grant(user=user, amount=amount, reason=reason, idempotency_key=key)
            else:
                entry = ledger.adjust(user=user, amount=amount, reason=reason, idempotency_key=key)
        except InsufficientCredits as exc:
            raise CommandError(
                f"Cannot deduct {-amount} credits from {username}: only {exc.available} are "
                "not reserved for generations in flight."
            ) from None
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

        account = CreditAccount.objects.get(user=user)
        if replay:
            self.stdout.write(
                f"Already applied as ledger entry #{entry.pk} ({entry.kind} {entry.amount:+d}); "
                "nothing changed."
            )
        else:
            verb = "Granted" if amount > 0 else "Deducted"
            self.stdout.write(
                self.style.SUCCESS(f"{verb} {abs(amount)} credits for {username}")
                + f" (ledger entry #{entry.pk})."
            )
        self.stdout.write(
            f"{username}: balance {account.balance}, reserved {account.reserved}, "
            f"available {account.available}."
        )
