"""Links from one admin page to another's filtered list."""

from __future__ import annotations

from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode


def changelist_link(model: str, label: str, **filters) -> str:
    """A link to the changelist of `model` ("app_label.model_name"), filtered. The name,
    not the class: the accounts admin then links to generations without importing them."""
    app_label, model_name = model.lower().split(".")
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), label)
