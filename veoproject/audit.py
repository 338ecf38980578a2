"""The audit trail of staff actions: Django's admin LogEntry, written by the services.

Every staff action (moderation, suspension, credit correction, refund, voucher creation,
token revocation, pricing change) calls `record` inside its transaction, so the entry
exists exactly when the action took effect, and takes its reason through `require_reason`.
The entries are visible in the admin ("Recent actions", each object's "History", and the
Log entries list).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db import models

from veoproject.exceptions import ValidationFailed

if TYPE_CHECKING:
    from accounts.models import User

__all__ = ["ADDITION", "CHANGE", "DELETION", "REASON_MAX_LENGTH", "record", "require_reason"]

# What a reason may hold (the admin's reason fields allow as much).
REASON_MAX_LENGTH = 500


def require_reason(reason: str | None) -> str:
    """The reason a staff action is recorded with, stripped; ValidationFailed (on the
    "reason" field) when there is none."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("A reason is required.", fields={"reason": ["Required."]})
    return reason[:REASON_MAX_LENGTH]


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
            user_id=actor.pk,
            queryset=objects,
            action_flag=action_flag,
            change_message=message,
            # Explicit (the default) so the stubs pick the list-returning overload.
            single_object=False,
        )
    )
