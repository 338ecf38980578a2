"""The audit trail of staff actions: Django's admin LogEntry, written by the services.

Every staff action (moderation, suspension, credit correction, refund, voucher creation,
token revocation, pricing change) calls `record` inside its transaction, so the entry
exists exactly when the action took effect. The entries are visible in the admin
("Recent actions", each object's "History", and the Log entries list).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db import models

from accounts.models import User

__all__ = ["ADDITION", "CHANGE", "DELETION", "record"]


def record(
    *, actor: User, objects: Iterable[models.Model], action_flag: int, message: str
) -> list[LogEntry]:
    """One LogEntry per object: who (actor), what (object + message), when (action_time),
    why (the reason, part of the message)."""
    objects = list(objects)
    if not objects:
        return []
    return list(
        LogEntry.objects.log_actions(
            user_id=actor.pk, queryset=objects, action_flag=action_flag, change_message=message
        )
    )
