"""LedgerEntry.account loses its own index: (account, -created_at) starts with it, so
lookups by account use that one, and every movement writes one index fewer."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_purchase_owed"),
    ]

    operations = [
        migrations.AlterField(
            model_name="ledgerentry",
            name="account",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entries",
                to="accounts.creditaccount",
            ),
        ),
    ]
