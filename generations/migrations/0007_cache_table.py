"""The database cache's table, so that `manage.py migrate` is the only database step a
release needs. `createcachetable` creates the table of every configured database cache
and skips tables that exist, so this is a no-op with Redis (REDIS_URL) or on a database
where the table was made by hand."""

from django.core.management import call_command
from django.db import migrations


def create_cache_tables(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("generations", "0006_fal_costs")]

    operations = [migrations.RunPython(create_cache_tables, migrations.RunPython.noop)]
