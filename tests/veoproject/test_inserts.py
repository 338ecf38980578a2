"""`veoproject.inserts.insert_row`: the accept path's INSERT, built once per model, writes
what `save(force_insert=True)` writes, raises what it raises, and steps aside for what it
does not do itself (expressions, signals, columns the database fills in)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Value
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import LedgerEntry
from generations.models import Generation
from generations.services import accept
from veoproject import inserts
from veoproject.inserts import insert_row

pytestmark = [pytest.mark.django_db, pytest.mark.pg]


NOW = timezone.now()


def new_generation(owner, **overrides) -> Generation:
    now = NOW
    values = {
        "owner": owner,
        "status": Generation.Status.PENDING,
        "prompt": "Waves at dusk, \N{SNOWFLAKE} and 'quotes' \"and\" %s and %(x)s",
        "image_url": "https://images.example.com/a.jpg",
        "aspect_ratio": "9:16",
        "duration": "6s",
        "resolution": "1080p",
        "generate_audio": True,
        "endpoint": "fal-ai/veo3.1/image-to-video",
        "model": "fal-ai/veo3.1/image-to-video",
        "model_options": {"seed": 7, "negative_prompt": "no people", "nested": [1, {"a": None}]},
        "cost_credits": 480,
        "price_breakdown": [{"item": "6 s x 80", "credits": 480}],
        "idempotency_key": uuid.uuid4().hex,
        "request_fingerprint": "f" * 64,
        "callback_url": "https://hooks.example.com/cb",
        "next_poll_at": now + timedelta(seconds=30),
        "deadline_at": now + timedelta(hours=1),
    }
    return Generation(**{**values, **overrides})


def stored(generation: Generation) -> dict:
    """Every column but the keys and the two timestamps (each row has its own)."""
    row = Generation.objects.filter(pk=generation.pk).values().get()
    for name in ("id", "idempotency_key", "created_at", "updated_at"):
        row.pop(name)
    return row


def test_the_row_is_the_one_save_writes(user):
    by_save = new_generation(user)
    by_save.image.save("a.png", ContentFile(b"png"), save=False)
    by_save.save(force_insert=True)
    by_insert = new_generation(user, image=by_save.image.name)

    insert_row(by_insert)

    assert stored(by_insert) == stored(by_save)
    assert by_insert._state.adding is False and by_insert._state.db == "default"
    # auto_now_add and auto_now filled in on the instance, as save() does, and stored.
    fresh = Generation.objects.get(pk=by_insert.pk)
    assert by_insert.created_at == fresh.created_at and by_insert.updated_at == fresh.updated_at


def test_a_null_and_an_empty_value_stay_what_they_were(user):
    generation = new_generation(
        user, idempotency_key=None, callback_url="", next_poll_at=None, model_options={}
    )
    insert_row(generation)
    fresh = Generation.objects.get(pk=generation.pk)
    assert fresh.idempotency_key is None and fresh.next_poll_at is None
    assert fresh.callback_url == "" and fresh.model_options == {}


def test_a_second_row_is_one_statement_built_once(user):
    insert_row(new_generation(user))
    with (
        mock.patch(
            "django.db.models.sql.compiler.SQLInsertCompiler.as_sql",
            side_effect=AssertionError("compiled again"),
        ),
        CaptureQueriesContext(connection) as queries,
    ):
        insert_row(new_generation(user))
    assert len(queries) == 1 and queries[0]["sql"].startswith("INSERT INTO")


def test_a_taken_unique_key_raises_and_marks_the_transaction_for_rollback(user):
    first = new_generation(user)
    insert_row(first)
    again = new_generation(user, idempotency_key=first.idempotency_key)
    with pytest.raises(IntegrityError), transaction.atomic():
        try:
            insert_row(again)
        finally:
            # As save() would leave it: the block cannot go on as if nothing happened.
            assert transaction.get_connection().needs_rollback
    assert Generation.objects.filter(idempotency_key=first.idempotency_key).count() == 1


def test_an_expression_goes_through_save(user):
    generation = new_generation(user, cost_credits=Value(320) + Value(160))
    insert_row(generation)
    assert Generation.objects.get(pk=generation.pk).cost_credits == 480


def test_with_a_pre_save_receiver_it_goes_through_save_and_sends_it(user):
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    pre_save.connect(receiver, sender=Generation, weak=False)
    try:
        generation = new_generation(user)
        insert_row(generation)
    finally:
        pre_save.disconnect(receiver, sender=Generation)
    assert seen == [generation.pk]
    assert Generation.objects.filter(pk=generation.pk).exists()


def test_a_row_whose_key_the_database_assigns_goes_through_save(user, other_user):
    """An auto-increment primary key is read back by save(); the shortcut has no way to."""
    account = user.credit_account
    entry = LedgerEntry(
        account=account,
        kind=LedgerEntry.Kind.GRANT,
        amount=1,
        reserved_change=0,
        balance_after=account.balance,
        reserved_after=account.reserved,
        idempotency_key=f"test:{uuid.uuid4().hex}",
    )
    insert_row(entry)
    assert entry.pk is not None and LedgerEntry.objects.filter(pk=entry.pk).exists()
    assert inserts._statement(LedgerEntry, connection) is None


def test_accept_writes_the_generation_without_save(user, valid_body):
    with mock.patch.object(Generation, "save", side_effect=AssertionError("save() called")):
        result = accept(user=user, params=valid_body, idempotency_key="k-1")
    generation = Generation.objects.get(pk=result.generation.pk)
    assert generation.idempotency_key == "k-1" and generation.cost_credits > 0


def test_values_a_field_would_convert_are_converted_as_save_converts_them(user):
    """Plain values pass as they are; a lazy string, a number as text, an enum member go
    through their field's preparation, as with save()."""
    from django.utils.translation import gettext_lazy

    odd = {
        "prompt": gettext_lazy("A lazy prompt"),
        "cost_credits": "480",
        "status": Generation.Status.PENDING,
        "generate_audio": 1,
    }
    by_save = new_generation(user, **odd)
    by_save.save(force_insert=True)
    by_insert = new_generation(user, **odd)
    insert_row(by_insert)
    assert stored(by_insert) == stored(by_save)
    fresh = Generation.objects.get(pk=by_insert.pk)
    assert (fresh.prompt, fresh.cost_credits, fresh.generate_audio) == ("A lazy prompt", 480, True)
