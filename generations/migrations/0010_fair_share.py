"""Fair share of fal's slots: the `waiting` status (our own queue, shown as `queued`), an
index that reads that queue in order, and the deficit round robin's memory per user
(`generations.fair_share`)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

STATUSES = [
    ("waiting", "Waiting for a slot"),
    ("pending", "Pending"),
    ("submitting", "Submitting"),
    ("queued", "Queued"),
    ("running", "Running"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("canceled", "Canceled"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0009_quotes"),
        ("accounts", "0006_fair_share_weight"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="generation", name="gen_status_valid"),
        migrations.AlterField(
            model_name="generation",
            name="status",
            field=models.CharField(choices=STATUSES, default="pending", max_length=16),
        ),
        migrations.AddConstraint(
            model_name="generation",
            constraint=models.CheckConstraint(
                condition=models.Q(status__in=[value for value, _ in STATUSES]),
                name="gen_status_valid",
            ),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(status="waiting"),
                fields=["created_at", "id"],
                name="gen_waiting_queue",
            ),
        ),
        migrations.CreateModel(
            name="FairShareTurn",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("deficit_seconds", models.PositiveIntegerField(default=0)),
                (
                    "turn",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "Not its turn"),
                            ("visiting", "Its turn now"),
                            ("visited", "Its turn just ended"),
                        ],
                        default="",
                        max_length=8,
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        condition=~models.Q(turn=""), fields=("turn",), name="fair_share_one_turn"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(turn__in=["", "visiting", "visited"]),
                        name="fair_share_turn_valid",
                    ),
                ],
            },
        ),
    ]
