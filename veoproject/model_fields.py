"""What services read from model field definitions, so a limit is written once (in the
model) and checked before a save."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db import models


def max_length(model: type[models.Model], field_name: str) -> int:
    """The `max_length` of `model.field_name`, which must have one."""
    field = model._meta.get_field(field_name)
    if not isinstance(field, models.Field) or field.max_length is None:
        raise ImproperlyConfigured(f"{model.__name__}.{field_name} has no max_length.")
    return field.max_length
