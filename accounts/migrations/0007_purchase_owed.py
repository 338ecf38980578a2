"""Purchases that still show credits owed which later credits already paid.

Before this release, paying an account's debt (`accounts.ledger._pay_debt`) lowered
`CreditAccount.owed` but never `Purchase.credits_owed`. Now the two stay equal; this
brings the purchases written before down to their account's debt, oldest purchase first,
each paid credit moved to `credits_taken_back` (what `accounts.ledger._purchases_follow_debt`
does at every payment; written out here because a migration is frozen history). Accounts
whose purchases owe less than the account are left for `check_ledger` to report.
"""

from django.db import migrations
from django.db.models import F, OuterRef, Subquery, Sum
from django.utils import timezone


def purchases_follow_debt(apps, schema_editor):
    CreditAccount = apps.get_model("accounts", "CreditAccount")
    Purchase = apps.get_model("accounts", "Purchase")
    owed_by_purchases = (
        Purchase.objects.filter(user_id=OuterRef("user_id"))
        .order_by()
        .values("user_id")
        .annotate(total=Sum("credits_owed"))
        .values("total")
    )
    behind = (
        CreditAccount.objects.annotate(purchases_owed=Subquery(owed_by_purchases))
        .filter(purchases_owed__gt=F("owed"))
        .values_list("user_id", flat=True)
    )
    for user_id in list(behind):
        # The ledger's lock order: the account, then its purchases.
        owed = CreditAccount.objects.select_for_update().get(user_id=user_id).owed
        owing = list(
            Purchase.objects.select_for_update()
            .filter(user_id=user_id, credits_owed__gt=0)
            .order_by("pk")
        )
        excess = sum(purchase.credits_owed for purchase in owing) - owed
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


class Migration(migrations.Migration):
    dependencies = [("accounts", "0006_fair_share_weight")]

    operations = [migrations.RunPython(purchases_follow_debt, migrations.RunPython.noop)]
