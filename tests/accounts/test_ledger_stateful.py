"""Random sequences of ledger operations against a model of what they should do.

After every step: the ledger invariant holds (`broken_accounts() == []`), every account
keeps balance >= reserved >= 0, the cached numbers equal the model's, and every error
raised was one of ours and was expected.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts import ledger
from accounts.ledger import LedgerError
from accounts.models import CreditAccount, LedgerEntry
from generations.models import Generation
from tests.factories import GenerationFactory, UserFactory
from veoproject.exceptions import InsufficientCredits, ValidationFailed

Kind = LedgerEntry.Kind
OURS = (InsufficientCredits, ValidationFailed, LedgerError)
_usernames = itertools.count()


@dataclass
class ModelAccount:
    balance: int = 0
    reserved: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.reserved


@dataclass
class ModelGeneration:
    generation: Generation
    user_index: int
    cost: int
    held: bool = False
    settled: str | None = None  # "capture" or "release"
    refunded: bool = False
    keys: set = field(default_factory=set)


class LedgerMachine(RuleBasedStateMachine):
    """Each example runs inside a transaction that is rolled back at teardown."""

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.users: list = []
        self.model: list[ModelAccount] = []
        self.generations: list[ModelGeneration] = []

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    @initialize(starting=st.lists(st.integers(0, 2000), min_size=2, max_size=3))
    def create_users(self, starting: list[int]) -> None:
        for credits in starting:
            self.users.append(UserFactory(username=f"machine{next(_usernames)}", credits=credits))
            self.model.append(ModelAccount(balance=credits))

    def expect(self, error: type[Exception] | None, call) -> LedgerEntry | None:
        """Run `call`; it must raise exactly `error` (one of ours) or nothing."""
        try:
            entry = call()
        except OURS as exc:
            assert error is not None and isinstance(exc, error), f"unexpected {exc!r}"
            return None
        assert error is None, f"expected {error.__name__}, got none"
        return entry

    # --- rules -----------------------------------------------------------------------------

    @rule(who=st.integers(0, 2), amount=st.integers(-5, 600), topup=st.booleans())
    def grant(self, who: int, amount: int, topup: bool) -> None:
        who %= len(self.users)
        kind = Kind.TOPUP if topup else Kind.GRANT
        call = lambda: ledger.grant(  # noqa: E731
            user=self.users[who], amount=amount, reason="machine", kind=kind
        )
        if self.expect(ValidationFailed if amount <= 0 else None, call):
            self.model[who].balance += amount

    @rule(who=st.integers(0, 2), key=st.sampled_from(["a", "b"]), amount=st.integers(1, 300))
    def grant_with_key(self, who: int, key: str, amount: int) -> None:
        """Only the first grant with a key moves credits, whatever its amount later."""
        who %= len(self.users)
        key = f"{self.users[who].username}:{key}"
        first_time = not LedgerEntry.objects.filter(idempotency_key=key).exists()
        ledger.grant(user=self.users[who], amount=amount, reason="keyed", idempotency_key=key)
        if first_time:
            self.model[who].balance += amount

    @rule(
        who=st.integers(0, 2),
        amount=st.integers(-700, 700),
        reason=st.sampled_from(["correction", "", "  "]),
    )
    def adjust(self, who: int, amount: int, reason: str) -> None:
        who %= len(self.users)
        account = self.model[who]
        if amount == 0 or not reason.strip():
            error = ValidationFailed
        elif amount < 0 and account.available < -amount:
            error = InsufficientCredits
        else:
            error = None
        call = lambda: ledger.adjust(user=self.users[who], amount=amount, reason=reason)  # noqa: E731
        if self.expect(error, call):
            account.balance += amount

    @rule(who=st.integers(0, 2), cost=st.integers(1, 500))
    def hold(self, who: int, cost: int) -> None:
        who %= len(self.users)
        generation = GenerationFactory(owner=self.users[who], cost_credits=cost)
        tracked = ModelGeneration(generation=generation, user_index=who, cost=cost)
        self.generations.append(tracked)
        account = self.model[who]
        error = InsufficientCredits if account.available < cost else None
        if self.expect(error, lambda: ledger.hold(generation=generation)):
            account.reserved += cost
            tracked.held = True

    @precondition(lambda self: self.generations)
    @rule(pick=st.integers(0, 10_000))
    def hold_again(self, pick: int) -> None:
        tracked = self.generations[pick % len(self.generations)]
        account = self.model[tracked.user_index]
        if tracked.held:
            # Idempotent: the same hold entry, nothing moves.
            entry = ledger.hold(generation=tracked.generation)
            assert entry.kind == Kind.HOLD
        else:
            error = InsufficientCredits if account.available < tracked.cost else None
            if self.expect(error, lambda: ledger.hold(generation=tracked.generation)):
                account.reserved += tracked.cost
                tracked.held = True

    @precondition(lambda self: any(g.held and not g.settled for g in self.generations))
    @rule(pick=st.integers(0, 10_000), capture=st.booleans())
    def settle_open_hold(self, pick: int, capture: bool) -> None:
        open_holds = [g for g in self.generations if g.held and not g.settled]
        self.settle_one(open_holds[pick % len(open_holds)], capture)

    @precondition(lambda self: self.generations)
    @rule(pick=st.integers(0, 10_000), capture=st.booleans())
    def settle_any(self, pick: int, capture: bool) -> None:
        self.settle_one(self.generations[pick % len(self.generations)], capture)

    def settle_one(self, tracked: ModelGeneration, capture: bool) -> None:
        account = self.model[tracked.user_index]
        operation = ledger.capture if capture else ledger.release
        if not tracked.held:
            self.expect(LedgerError, lambda: operation(generation=tracked.generation))
            return
        entry = operation(generation=tracked.generation)
        if tracked.settled is None:
            tracked.settled = Kind.CAPTURE if capture else Kind.RELEASE
            account.reserved -= tracked.cost
            if capture:
                account.balance -= tracked.cost
        # A late settle returns the first one and moves nothing.
        assert entry.kind == tracked.settled

    @precondition(lambda self: any(g.settled == Kind.CAPTURE for g in self.generations))
    @rule(pick=st.integers(0, 10_000), reason=st.sampled_from(["bad output", ""]))
    def refund_captured(self, pick: int, reason: str) -> None:
        captured = [g for g in self.generations if g.settled == Kind.CAPTURE]
        self.refund_one(captured[pick % len(captured)], reason)

    @precondition(lambda self: self.generations)
    @rule(pick=st.integers(0, 10_000), reason=st.sampled_from(["bad output", ""]))
    def refund_any(self, pick: int, reason: str) -> None:
        self.refund_one(self.generations[pick % len(self.generations)], reason)

    def refund_one(self, tracked: ModelGeneration, reason: str) -> None:
        account = self.model[tracked.user_index]
        if tracked.settled != Kind.CAPTURE:
            error = LedgerError
        elif not reason.strip():
            error = ValidationFailed
        else:
            error = None
        entry = self.expect(
            error, lambda: ledger.refund(generation=tracked.generation, reason=reason)
        )
        if entry is not None:
            assert entry.kind == Kind.REFUND and entry.amount == tracked.cost
            if not tracked.refunded:
                tracked.refunded = True
                account.balance += tracked.cost

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def ledger_is_consistent(self) -> None:
        assert ledger.broken_accounts() == []

    @invariant()
    def accounts_match_the_model(self) -> None:
        for user, expected in zip(self.users, self.model, strict=True):
            account = CreditAccount.objects.get(user=user)
            assert account.balance >= account.reserved >= 0
            assert (account.balance, account.reserved) == (expected.balance, expected.reserved)


@pytest.mark.pg
def test_random_ledger_operations_keep_the_books_exact(db):
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
