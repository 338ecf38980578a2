"""Posting admin actions the way the changelist does."""

from __future__ import annotations

from django.urls import reverse


def changelist(model) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")


def run_action(client, model, action: str, objects, **extra):
    """POST `action` for `objects` to the changelist of `model`. Without `apply` a reason
    action answers with its intermediate page; with `apply=1, reason=...` it acts."""
    data = {"action": action, "_selected_action": [str(obj.pk) for obj in objects], **extra}
    return client.post(changelist(model), data)
