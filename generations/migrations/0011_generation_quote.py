"""A generation records the quote that paid for it (one generation per quote)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("generations", "0010_fair_share")]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="quote",
            field=models.OneToOneField(
                blank=True,
                help_text="The quote whose price it paid; empty when it paid the price at "
                "acceptance.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="generation",
                to="generations.quote",
            ),
        ),
    ]
