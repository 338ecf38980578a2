"""A user's time zone and language (shown times, the portal's language)."""

from django.db import migrations, models

import accounts.time_zones


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_payments")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="time_zone",
            field=models.CharField(
                blank=True,
                default="",
                max_length=64,
                validators=[accounts.time_zones.validate_time_zone],
            ),
        ),
        migrations.AddField(
            model_name="user",
            name="language",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
    ]
