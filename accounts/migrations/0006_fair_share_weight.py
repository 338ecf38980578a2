"""A user's weight in the fair share of fal's slots (`generations.fair_share`)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0005_time_zone")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="share_weight",
            field=models.PositiveSmallIntegerField(
                default=1,
                help_text="Share of the video service's slots while others wait too (1 = "
                "everyone's default; 2 = twice as many seconds of video per turn).",
                validators=[
                    django.core.validators.MinValueValidator(1),
                    django.core.validators.MaxValueValidator(100),
                ],
            ),
        ),
    ]
