"""Races on the ledger, with real threads each on its own database connection.

Marked `pg`: `make test` runs them on SQLite (writers serialised by BEGIN IMMEDIATE, on a
file-based test database so that threads share it) and again on PostgreSQL (row locks and
conditional UPDATEs under READ COMMITTED), where they matter most.
"""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from accounts import ledger
from accounts.models import CreditAccount, LedgerEntry
from tests.factories import GenerationFactory, UserFactory
from tests.races import race
from veoproject.exceptions import InsufficientCredits

Kind = LedgerEntry.Kind

pytestmark = [pytest.mark.pg, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _shared_database():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.fail(
            "These tests need a database that threads share: settings_test uses a SQLite "
            "file for tests when DATABASE_URL is unset; do not override it with :memory:."
        )


def assert_ledger_consistent() -> None:
    assert ledger.broken_accounts() == []
    out = StringIO()
    call_command("check_ledger", stdout=out)
    assert "ledger OK" in out.getvalue()
    # Every intermediate state the entries recorded kept balance >= reserved >= 0.
    assert not LedgerEntry.objects.filter(balance_after__lt=0).exists()
    assert not LedgerEntry.objects.filter(reserved_after__lt=0).exists()
    for entry in LedgerEntry.objects.all():
        assert entry.balance_after >= entry.reserved_after >= 0


def test_50_holds_of_40_race_for_400_credits_and_exactly_10_win():
    owner = UserFactory(credits=400)
    generations = [GenerationFactory(owner=owner, cost_credits=40) for _ in range(50)]

    results = race(50, lambda i: ledger.hold(generation=generations[i]))

    outcomes = Counter(kind for kind, _ in results)
    errors = [value for kind, value in results if kind == "error"]
    assert outcomes == {"ok": 10, "error": 40}, errors[:3]
    for exc in errors:
        assert isinstance(exc, InsufficientCredits), repr(exc)
        assert exc.required == 40
        assert exc.available == 0
    account = CreditAccount.objects.get(user=owner)
    assert (account.balance, account.reserved, account.available) == (400, 400, 0)
    held = {value.generation_id for kind, value in results if kind == "ok"}
    assert (
        set(LedgerEntry.objects.filter(kind=Kind.HOLD).values_list("generation_id", flat=True))
        == held
    )
    assert_ledger_consistent()


def test_racing_captures_and_releases_of_one_generation_settle_it_exactly_once():
    owner = UserFactory(credits=400)
    generation = GenerationFactory(owner=owner, cost_credits=40)
    ledger.hold(generation=generation)

    def settle(index: int) -> LedgerEntry:
        if index % 2:
            return ledger.release(generation=generation, reason="race")
        return ledger.capture(generation=generation)

    results = race(20, settle)

    assert [kind for kind, _ in results] == ["ok"] * 20, [v for k, v in results if k != "ok"]
    settlements = LedgerEntry.objects.filter(
        generation=generation, kind__in=[Kind.CAPTURE, Kind.RELEASE]
    )
    assert settlements.count() == 1
    winner = settlements.get()
    # Every caller, winner or loser, was told the same outcome.
    assert {entry.pk for _, entry in results} == {winner.pk}
    account = CreditAccount.objects.get(user=owner)
    expected = (360, 0) if winner.kind == Kind.CAPTURE else (400, 0)
    assert (account.balance, account.reserved) == expected
    assert_ledger_consistent()


def test_racing_holds_of_one_generation_reserve_once():
    owner = UserFactory(credits=400)
    generation = GenerationFactory(owner=owner, cost_credits=40)

    results = race(20, lambda i: ledger.hold(generation=generation))

    assert [kind for kind, _ in results] == ["ok"] * 20, [v for k, v in results if k != "ok"]
    assert len({entry.pk for _, entry in results}) == 1
    account = CreditAccount.objects.get(user=owner)
    assert (account.balance, account.reserved) == (400, 40)
    assert_ledger_consistent()


def test_racing_grants_with_one_idempotency_key_grant_once():
    owner = UserFactory(credits=0)

    results = race(
        20,
        lambda i: ledger.grant(user=owner, amount=500, reason="retry", idempotency_key="pay:1"),
    )

    assert [kind for kind, _ in results] == ["ok"] * 20, [v for k, v in results if k != "ok"]
    assert len({entry.pk for _, entry in results}) == 1
    assert CreditAccount.objects.get(user=owner).balance == 500
    assert_ledger_consistent()


def test_racing_deductions_never_take_reserved_credits():
    """Holds and negative adjustments compete for the same 400 credits."""
    owner = UserFactory(credits=400)
    generations = [GenerationFactory(owner=owner, cost_credits=40) for _ in range(10)]

    def act(index: int) -> LedgerEntry:
        if index < 10:
            return ledger.hold(generation=generations[index])
        return ledger.adjust(user=owner, amount=-40, reason="chargeback")

    results = race(20, act)

    wins = [value for kind, value in results if kind == "ok"]
    errors = [value for kind, value in results if kind == "error"]
    assert len(wins) == 10
    assert all(isinstance(exc, InsufficientCredits) for exc in errors), errors
    account = CreditAccount.objects.get(user=owner)
    deducted = sum(-e.amount for e in wins if e.kind == Kind.ADJUSTMENT)
    reserved = sum(e.reserved_change for e in wins if e.kind == Kind.HOLD)
    assert (account.balance, account.reserved) == (400 - deducted, reserved)
    assert account.available == 0
    assert_ledger_consistent()
