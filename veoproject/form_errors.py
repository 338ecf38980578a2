"""Putting a service's error on the form that asked for it (portal views, admin forms)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from django import forms

from veoproject.exceptions import ApplicationError


def add_service_errors(
    form: forms.Form,
    exc: ApplicationError,
    *,
    aliases: Mapping[str, str] | None = None,
    hidden: Collection[str] = (),
    with_message: bool = False,
) -> None:
    """The error's field messages go under the form's fields (a service field name may
    show under another: `aliases`; fields in `hidden` are never shown, say a hidden
    input); its message goes on top when no field took a message, or always with
    `with_message` (when the message says more than the fields do)."""
    aliases = aliases or {}
    placed = False
    for name, errors in (exc.fields or {}).items():
        field = aliases.get(name, name)
        if field in form.fields and field not in hidden:
            for error in errors:
                form.add_error(field, error)
            placed = True
    if not placed or with_message:
        form.add_error(None, exc.message)
