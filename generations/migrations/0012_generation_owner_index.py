"""Generation.owner loses its own index: gen_owner_created and gen_owner_status start
with it, so lookups by owner use those, and every accept writes one index fewer."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0011_generation_quote"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="generation",
            name="owner",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="generations",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
