"""Template filters for `generations.wording`: a failed or canceled video's reason, advice
and cost in plain words (cards, the generation page)."""

from __future__ import annotations

from django import template

from accounts.ledger_export import owner_reason
from accounts.models import LedgerEntry
from generations import wording
from generations.models import Generation

register = template.Library()


@register.filter
def failure_reason(generation: Generation) -> wording.Reason | None:
    return wording.failure_reason(generation)


@register.filter
def settlement(generation: Generation) -> str:
    return wording.settlement(generation)


@register.filter
def ledger_note(entry: LedgerEntry) -> str:
    return owner_reason(kind=entry.kind, reason=entry.reason)
