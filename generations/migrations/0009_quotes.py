"""Binding quotes: the Quote a create may carry, and a generation's price line items."""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("generations", "0008_catalogue"), ("accounts", "0006_fair_share_weight")]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="price_breakdown",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The price's line items at acceptance (generations.pricing.LineItem); "
                "empty for generations accepted before they were recorded.",
            ),
        ),
        migrations.CreateModel(
            name="Quote",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("model", models.CharField(help_text="fal's endpoint id.", max_length=200)),
                (
                    "options",
                    models.JSONField(help_text="The options that set the price and the frame."),
                ),
                ("cost_credits", models.PositiveIntegerField()),
                (
                    "price_breakdown",
                    models.JSONField(default=list, help_text="The price's line items."),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("expires_at", models.DateTimeField(db_index=True)),
                ("used_at", models.DateTimeField(blank=True, null=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="quotes",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("cost_credits__gt", 0)), name="quote_cost_positive"
                    )
                ],
            },
        ),
    ]
