"""`check_ledger`: exit 1 if any account's cached numbers disagree with its ledger."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts import ledger
from accounts.models import CreditAccount


class Command(BaseCommand):
    help = (
        "Check every credit account: cached balance == sum of its ledger entries, "
        "reserved == its open holds, balance >= reserved >= 0, and owed == what its "
        "purchases still owe == what their refunds and disputes reversed less what the "
        "ledger took for them. Exits 1 if any breaks."
    )

    def handle(self, *args, **options) -> None:
        checked = CreditAccount.objects.count()
        broken = ledger.broken_accounts()
        if not broken:
            self.stdout.write(self.style.SUCCESS(f"ledger OK: {checked} accounts checked"))
            return
        for row in broken:
            self.stdout.write(
                f"BROKEN account #{row['id']} ({row['user__username']}): "
                f"balance cached {row['balance']} vs ledger {row['ledger_balance']}; "
                f"reserved cached {row['reserved']} vs ledger {row['ledger_reserved']} "
                f"vs open holds {row['open_holds']}; "
                f"owed cached {row['owed']} vs purchases {row['purchases_owed']} "
                f"vs ledger {row['ledger_owed']}"
            )
        raise CommandError(
            f"ledger BROKEN: {len(broken)} of {checked} accounts disagree with their entries",
            returncode=1,
        )
