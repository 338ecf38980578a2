"""Fewer indexes written by every movement of credits:

- the idempotency key's uniqueness becomes a constraint (one index on PostgreSQL, where
  `unique=True` also made a `varchar_pattern_ops` index for LIKE that nothing uses); the
  constraint is added before the old unique index goes, so the key is never unguarded;
- voucher and actor are indexed only where set (most entries have neither).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_ledgerentry_account_index"),
        ("generations", "0013_fewer_indexes"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="ledgerentry",
            constraint=models.UniqueConstraint(
                fields=("idempotency_key",), name="ledger_idempotency_key"
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="idempotency_key",
            field=models.CharField(max_length=200),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="The staff member who made this entry, if any.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="voucher",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ledger_entries",
                to="accounts.voucher",
            ),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(
                condition=models.Q(("voucher__isnull", False)),
                fields=["voucher"],
                name="ledger_voucher",
            ),
        ),
        migrations.AddIndex(
            model_name="ledgerentry",
            index=models.Index(
                condition=models.Q(("actor__isnull", False)), fields=["actor"], name="ledger_actor"
            ),
        ),
    ]
