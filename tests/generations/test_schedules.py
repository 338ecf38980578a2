from __future__ import annotations

import pytest
from django.apps import apps
from django_q.models import Schedule

from generations.schedules import SCHEDULES, ensure_schedules

pytestmark = pytest.mark.django_db


def test_periodic_work_is_scheduled_once_however_often_migrate_runs():
    config = apps.get_app_config("generations")
    ensure_schedules(sender=config, app_config=config)
    ensure_schedules(sender=config, app_config=config)
    rows = Schedule.objects.filter(name__in=SCHEDULES)
    assert sorted(rows.values_list("name", flat=True)) == sorted(SCHEDULES)
    for row in rows:
        assert (row.schedule_type, row.repeats) == (Schedule.MINUTES, -1)
        assert row.func == SCHEDULES[row.name]["func"]
