"""Serializer fields built once per class, not once per request.

DRF gives every serializer instance its own fields: `Serializer.get_fields` deep-copies
the declared fields (each `Field.__deepcopy__` calls the field's constructor again) and
`ModelSerializer.get_fields` maps every model field anew. On the accept path that was
about a tenth of a create's CPU for two serializers of ~20 fields each (BENCHMARKS.md 1.1).

`FieldsBuiltOnce` builds them once per serializer class and gives each instance shallow
copies, which `Serializer.fields` then binds to the instance as usual (a field keeps
its `parent`, name, label and source on itself, so a copy is bound without touching
the template). What a copy shares with the template is what DRF never changes after
construction: validators, choices, error messages, help texts. A field that holds other
fields gets copies of those too: a list's `child` is copied and re-parented to the copy, and a
nested serializer or a related-objects field is deep-copied as DRF would.

Use it only for serializers whose fields do not depend on the instance (no fields added
or changed in `__init__` or from the context): the template is the first instance's.
"""

from __future__ import annotations

import copy

from rest_framework import serializers
from rest_framework.fields import Field


def _copy(field: Field) -> Field:
    if isinstance(field, serializers.BaseSerializer) or hasattr(field, "child_relation"):
        return copy.deepcopy(field)
    # What copy.copy does for a plain object, without its generic machinery (Field has no
    # __copy__ or __reduce__ of its own; its __new__ only records the constructor's
    # arguments, which the template's __dict__ then carries over).
    new = object.__new__(type(field))
    new.__dict__.update(field.__dict__)
    child = getattr(field, "child", None)
    if isinstance(child, Field):
        # Bound to the template by its constructor (name and source ""): re-parented.
        new.child = _copy(child)  # type: ignore[attr-defined]
        new.child.parent = new  # type: ignore[attr-defined]
    return new


class FieldsBuiltOnce:
    """Mixin for a `Serializer` (first among its bases): see the module's docstring."""

    def get_fields(self) -> dict[str, Field]:
        cls = type(self)
        # Each class its own template (a subclass declares other fields).
        template: dict[str, Field] | None = cls.__dict__.get("_field_template")
        if template is None:
            template = super().get_fields()  # type: ignore[misc]
            cls._field_template = template  # type: ignore[attr-defined]
        return {name: _copy(field) for name, field in template.items()}
