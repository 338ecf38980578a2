"""Saving pricing rules with their history: who changed which field from what to what.

A change applies to quotes made afterwards only: an accepted generation keeps the
`cost_credits` frozen at its acceptance, and its hold and capture use that number.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from generations.models import PricingRule, PricingRuleChange
from veoproject import audit

TRACKED_FIELDS = ("endpoint", "resolution", "generate_audio", "credits_per_second", "active")


def save_rule(*, rule: PricingRule, actor: User) -> PricingRuleChange | None:
    """Save a new or edited rule and record what changed (None if nothing did).

    The stored row is locked while it is compared and written, so two staff members
    saving at once each get their own, correct, before -> after.
    """
    with transaction.atomic():
        before = (
            PricingRule.objects.select_for_update().filter(pk=rule.pk).first() if rule.pk else None
        )
        changes = {
            field: [
                getattr(before, field) if before is not None else None,
                getattr(rule, field),
            ]
            for field in TRACKED_FIELDS
            if before is None or getattr(before, field) != getattr(rule, field)
        }
        if not changes:
            return None
        rule.updated_by = actor
        rule.updated_at = timezone.now()
        rule.save()
        change = PricingRuleChange.objects.create(rule=rule, changed_by=actor, changes=changes)
        described = ", ".join(f"{field}: {old} -> {new}" for field, (old, new) in changes.items())
        audit.record(
            actor=actor,
            objects=[rule],
            action_flag=audit.ADDITION if before is None else audit.CHANGE,
            message=f"Pricing {'created' if before is None else 'changed'}: {described}",
        )
    return change
