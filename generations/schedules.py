"""Periodic work, created idempotently after migrate (never at import: django-q2 #102)."""

from __future__ import annotations

from django.db.models.signals import post_migrate
from django.dispatch import receiver

from generations.tasks import TASKS

SCHEDULES = {
    # The reconciler: polls in-flight generations and re-arms itself while any are in flight
    # (the scheduler only ticks every 30 s), fails those past their deadline, and retries
    # submits and downloads that are due.
    "generations.sweep": {"func": TASKS["sweep"], "minutes": 1},
    # Integrator callbacks whose next attempt was lost (Redis broker, crashed worker).
    "generations.sweep_callbacks": {"func": TASKS["sweep_callbacks"], "minutes": 1},
    # Quotes long past their expiry (generations/quotes.py).
    "generations.purge_quotes": {"func": TASKS["purge_quotes"], "minutes": 15},
}


@receiver(post_migrate, dispatch_uid="generations.ensure_schedules")
def ensure_schedules(sender, app_config=None, using: str = "default", **kwargs) -> None:
    if app_config is None or app_config.label != "generations":
        return
    from django_q.models import Schedule

    for name, spec in SCHEDULES.items():
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={
                "func": spec["func"],
                "schedule_type": Schedule.MINUTES,
                "minutes": spec["minutes"],
                "repeats": -1,
            },
        )
