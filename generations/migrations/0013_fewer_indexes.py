"""Fewer indexes written by every accept: fal's request id is indexed only once set (no
generation has one at accept, and every accept wrote the empty id into two indexes, the
plain one and PostgreSQL's LIKE one), and the moderator only where there is one."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0012_generation_owner_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="generation",
            name="fal_request_id",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(("fal_request_id", ""), _negated=True),
                fields=["fal_request_id"],
                name="gen_fal_request",
            ),
        ),
        migrations.AlterField(
            model_name="generation",
            name="moderated_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="generation",
            index=models.Index(
                condition=models.Q(("moderated_by__isnull", False)),
                fields=["moderated_by"],
                name="gen_moderated_by",
            ),
        ),
    ]
