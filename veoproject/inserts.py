"""One new row of a wide model, its INSERT statement built once per model and database.

`Model.save(force_insert=True)` compiles the INSERT afresh every time: for the 46 columns
of a generation that is most of the ORM's cost on the accept path (BENCHMARKS.md 1.3).
The statement never changes between two plain rows of one model, only its parameters, so
`insert_row` keeps the SQL Django's own compiler wrote and prepares the values the way
Django does (`Field.pre_save`, then `Field.get_db_prep_save`): the same row, the same
column values, the same errors (an IntegrityError on a unique key).

A value of the exact type a plain text, integer or boolean field stores (or None, also
for a date or time that does not fill itself in) is passed as it is: Django's preparation
of those returns it unchanged; anything else (a lazy string, "480" for an integer, a
date, JSON, a file, a key) is prepared by its field.

It falls back to `save(force_insert=True)` whenever the shortcut would not be the same:
a model with a parent table, with columns the database fills in (an auto-increment
primary key, `db_returning` fields) or with a field that writes its own placeholder
(`get_placeholder`, e.g. geometry); a value that is an SQL expression or a database
default; or `pre_save`/`post_save` receivers for the model (the shortcut sends no
signals, so it is used only when nobody listens).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from django.db import connections, models, router, transaction
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import InsertQuery

# Fields whose preparation leaves a value of this exact type (or None) as it is (their
# pre_save reads the attribute): exact classes only, a subclass may prepare otherwise.
_PLAIN: dict[type[models.Field], type] = {
    models.CharField: str,
    models.TextField: str,
    models.BooleanField: bool,
    models.IntegerField: int,
    models.SmallIntegerField: int,
    models.BigIntegerField: int,
    models.PositiveIntegerField: int,
    models.PositiveSmallIntegerField: int,
    models.PositiveBigIntegerField: int,
    models.URLField: str,
    models.EmailField: str,
    models.SlugField: str,
}
# A date or time field that does not fill itself in passes None as it is (a value goes
# through its field: time zone checks).
_NONE_ONLY = (models.DateTimeField, models.DateField, models.TimeField)

# A field of the INSERT, in column order, with the value type it passes as it is (or None).
Column = tuple[models.Field, type | None]
# (model, database alias) -> (the INSERT, its columns), or None: not for this model
_statements: dict[tuple[type[models.Model], str], tuple[str, tuple[Column, ...]] | None] = {}
_lock = threading.Lock()


def insert_row(instance: models.Model) -> None:
    """INSERT `instance` (a new row) as `instance.save(force_insert=True)` would."""
    model = type(instance)
    using = router.db_for_write(model, instance=instance)
    connection = connections[using]
    statement = _statement(model, connection)
    if statement is None or pre_save.has_listeners(model) or post_save.has_listeners(model):
        instance.save(force_insert=True, using=using)
        return
    sql, columns = statement
    instance._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
    params: list[Any] = []
    for field, plain in columns:
        if plain is not None:
            value = getattr(instance, field.attname)
            if value is None or type(value) is plain:
                params.append(value)
                continue
        else:
            value = field.pre_save(instance, True)
        if hasattr(value, "resolve_expression"):  # an expression, a database default
            instance.save(force_insert=True, using=using)
            return
        params.append(field.get_db_prep_save(value, connection))
    # As save() does: an error inside an atomic block marks it for rollback.
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(sql, params)
    instance._state.adding = False
    instance._state.db = using


def _statement(model, connection) -> tuple[str, tuple[Column, ...]] | None:
    key = (model, connection.alias)
    if key in _statements:
        return _statements[key]
    meta = model._meta
    fields = tuple(f for f in meta.local_concrete_fields if not f.generated)
    statement = None
    if not (
        meta.parents
        or meta.db_returning_fields
        or any(hasattr(f, "get_placeholder") for f in fields)
    ):
        # Django's compiler writes the statement, for a raw row (no pre_save) whose values
        # are all plain parameters (None here): one "%s" per column, in `fields` order.
        query = InsertQuery(model)
        row = SimpleNamespace(**{f.attname: None for f in fields})
        query.insert_values(fields, [row], raw=True)  # type: ignore[list-item]
        ((sql, params),) = query.get_compiler(connection=connection).as_sql()
        if len(params) == len(fields):
            statement = (sql, tuple((field, _plain_type(field)) for field in fields))
    with _lock:
        return _statements.setdefault(key, statement)


def _plain_type(field: models.Field) -> type | None:
    """The value type `field` stores as it is (None always passes too); None: prepare all."""
    if type(field) in _NONE_ONLY and not (
        getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    ):
        return type(None)
    return _PLAIN.get(type(field))
