"""Reading generations: the querysets views and the API list."""

from __future__ import annotations

from accounts.models import LedgerEntry, User
from generations import states
from generations.models import Generation


def generation_list(*, user: User, status: str | None = None):
    """A user's generations, newest first; `status` is a public status (pending includes
    the internal submitting, queued the internal waiting: `states.shown_as`)."""
    queryset = Generation.objects.filter(owner=user).order_by("-created_at", "-pk")
    if status:
        queryset = queryset.filter(status__in=states.shown_as(status))
    return queryset


def generation_ledger_entries(*, generation: Generation):
    return LedgerEntry.objects.filter(generation=generation).order_by("created_at", "id")
