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

The template is bound once too (`Field.bind`: name, label, source, a method field's
method name), so an instance's copies need only their `parent` set to it. A nested
serializer, deep-copied, is bound to the instance as DRF binds it.

Every CharField's check for lone surrogates (DRF's `ProhibitSurrogateCharactersValidator`,
a Python loop over each character of the value: two calls per character of a prompt) is
one regular expression in the template's fields, with the same message and code.

Use it only for serializers whose fields do not depend on the instance (no fields added
or changed in `__init__` or from the context): the template is the first instance's.
"""

from __future__ import annotations

import copy
import re
from typing import cast

from django.utils.functional import cached_property
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import Field
from rest_framework.utils.serializer_helpers import BindingDict
from rest_framework.validators import ProhibitSurrogateCharactersValidator

_SURROGATE = re.compile("[\ud800-\udfff]")


class NoSurrogates(ProhibitSurrogateCharactersValidator):
    """DRF's check, one regular expression instead of a loop over the characters."""

    def __call__(self, value) -> None:
        found = _SURROGATE.search(str(value))
        if found is not None:
            message = self.message.format(code_point=ord(found.group()))
            raise ValidationError(message, code=self.code)


def _copy(field: Field) -> Field:
    if _deep(field):
        return copy.deepcopy(field)
    # What copy.copy does for a plain object, without its generic machinery (Field has no
    # __copy__ or __reduce__ of its own; its __new__ only records the constructor's
    # arguments, which the template's __dict__ then carries over).
    new = object.__new__(type(field))
    new.__dict__.update(field.__dict__)
    child = field.__dict__.get("child")
    if isinstance(child, Field):
        # Bound to the template by its constructor (name and source ""): re-parented.
        new.child = _copy(child)  # type: ignore[attr-defined]
        new.child.parent = new  # type: ignore[attr-defined]
    return new


def _prepare(field: Field) -> None:
    """The template's field, once: the regular-expression surrogate check (a list's child
    too)."""
    field.validators = [
        NoSurrogates() if type(validator) is ProhibitSurrogateCharactersValidator else validator
        for validator in field.validators
    ]
    child = getattr(field, "child", None)
    if isinstance(child, Field):
        _prepare(child)


def _deep(field: Field) -> bool:
    """A field that holds a serializer of its own: copied deeply, as DRF copies it."""
    return isinstance(field, serializers.BaseSerializer) or hasattr(field, "child_relation")


class FieldsBuiltOnce:
    """Mixin for a `Serializer` (first among its bases): see the module's docstring."""

    def get_fields(self) -> dict[str, Field]:
        return {name: _copy(field) for name, field, _deep_copy in self._plan()}

    @cached_property
    def fields(self) -> BindingDict:
        serializer = cast(serializers.BaseSerializer, self)
        fields = BindingDict(serializer)
        own = fields.fields
        for name, field, deep in self._plan():
            if deep:
                fields[name] = copy.deepcopy(field)  # unbound: DRF binds it
                continue
            new = _copy(field)
            new.parent = serializer  # bound with the template: only its parent is its own
            own[name] = new
        return fields

    def _plan(self) -> tuple[tuple[str, Field, bool], ...]:
        """The class's bound field templates: (name, field, whether it is copied deeply)."""
        cls = type(self)
        # Each class its own templates (a subclass declares other fields).
        plan: tuple[tuple[str, Field, bool], ...] | None = cls.__dict__.get("_field_plan")
        if plan is None:
            template = super().get_fields()  # type: ignore[misc]
            for name, field in template.items():
                _prepare(field)
                field.bind(field_name=name, parent=cast(serializers.BaseSerializer, self))
                field.parent = None  # the templates keep no serializer alive
            plan = tuple((name, field, _deep(field)) for name, field in template.items())
            cls._field_plan = plan  # type: ignore[attr-defined]
        return plan
