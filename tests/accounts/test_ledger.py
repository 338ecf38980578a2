"""Every ledger operation: what it moves, its idempotency, and its errors."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from accounts import ledger
from accounts.ledger import LedgerError
from accounts.models import CreditAccount, LedgerEntry
from tests.credits import numbers
from tests.factories import GenerationFactory, UserFactory
from veoproject.exceptions import InsufficientCredits, ValidationFailed

Kind = LedgerEntry.Kind
pytestmark = pytest.mark.pg


def entry_count(user) -> int:
    return LedgerEntry.objects.filter(account__user=user).count()


@pytest.fixture
def held(user):
    """A 320-credit generation of `user` (1000 credits) with its hold placed."""
    generation = GenerationFactory(owner=user, cost_credits=320)
    ledger.hold(generation=generation)
    return generation


# --- grant ----------------------------------------------------------------------------------


def test_grant_adds_credits_and_records_the_entry(user, staff_user):
    entry = ledger.grant(user=user, amount=250, reason="welcome back", actor=staff_user)

    assert numbers(user) == (1250, 0)
    assert (entry.kind, entry.amount, entry.reserved_change) == (Kind.GRANT, 250, 0)
    assert (entry.balance_after, entry.reserved_after) == (1250, 0)
    assert (entry.actor, entry.reason, entry.generation) == (staff_user, "welcome back", None)
    assert ledger.broken_accounts() == []


def test_grant_can_be_a_topup(user):
    entry = ledger.grant(user=user, amount=500, reason="card payment", kind=Kind.TOPUP)
    assert entry.kind == Kind.TOPUP
    assert numbers(user) == (1500, 0)


@pytest.mark.parametrize("kind", [Kind.HOLD, Kind.CAPTURE, Kind.ADJUSTMENT, Kind.REFUND])
def test_grant_refuses_kinds_that_do_not_add_credits(user, kind):
    with pytest.raises(LedgerError):
        ledger.grant(user=user, amount=10, reason="x", kind=kind)
    assert numbers(user) == (1000, 0)


@pytest.mark.parametrize("amount", [0, -5, True, 2.5, "10", None])
def test_grant_refuses_anything_but_a_positive_whole_number(user, amount):
    with pytest.raises(ValidationFailed):
        ledger.grant(user=user, amount=amount, reason="x")
    assert numbers(user) == (1000, 0)
    assert entry_count(user) == 1


def test_grant_with_the_same_key_twice_moves_credits_once(user):
    first = ledger.grant(user=user, amount=100, reason="promo", idempotency_key="promo:1")
    again = ledger.grant(user=user, amount=100, reason="promo", idempotency_key="promo:1")

    assert again.pk == first.pk
    assert numbers(user) == (1100, 0)
    assert LedgerEntry.objects.filter(idempotency_key="promo:1").count() == 1


def test_grants_without_a_key_are_distinct(user):
    ledger.grant(user=user, amount=1, reason="a")
    ledger.grant(user=user, amount=1, reason="a")
    assert numbers(user) == (1002, 0)
    assert entry_count(user) == 3


# --- adjust ---------------------------------------------------------------------------------


def test_adjust_adds_or_deducts_with_a_reason(user, staff_user):
    up = ledger.adjust(user=user, amount=30, reason="goodwill", actor=staff_user)
    down = ledger.adjust(user=user, amount=-130, reason="double grant", actor=staff_user)

    assert (up.kind, up.amount, up.balance_after) == (Kind.ADJUSTMENT, 30, 1030)
    assert (down.kind, down.amount, down.balance_after) == (Kind.ADJUSTMENT, -130, 900)
    assert down.actor == staff_user
    assert numbers(user) == (900, 0)
    assert ledger.broken_accounts() == []


@pytest.mark.parametrize("reason", ["", "   \n"])
def test_adjust_without_a_reason_is_refused(user, reason):
    with pytest.raises(ValidationFailed) as caught:
        ledger.adjust(user=user, amount=-10, reason=reason)
    assert "reason" in caught.value.fields
    assert numbers(user) == (1000, 0)


@pytest.mark.parametrize("amount", [0, True, 1.5])
def test_adjust_refuses_zero_and_non_integers(user, amount):
    with pytest.raises(ValidationFailed):
        ledger.adjust(user=user, amount=amount, reason="x")
    assert numbers(user) == (1000, 0)


def test_adjust_never_deducts_what_is_reserved(user, held):
    # 1000 balance, 320 reserved: at most 680 may be taken away.
    with pytest.raises(InsufficientCredits) as caught:
        ledger.adjust(user=user, amount=-681, reason="too much")

    assert (caught.value.required, caught.value.available) == (681, 680)
    assert caught.value.extra == {"required": 681, "available": 680}
    assert numbers(user) == (1000, 320)
    assert entry_count(user) == 2


def test_adjust_may_deduct_down_to_exactly_what_is_reserved(user, held):
    ledger.adjust(user=user, amount=-680, reason="chargeback")
    assert numbers(user) == (320, 320)
    assert ledger.broken_accounts() == []


def test_adjust_with_the_same_key_twice_moves_credits_once(user):
    first = ledger.adjust(user=user, amount=-100, reason="fix", idempotency_key="fix:7")
    again = ledger.adjust(user=user, amount=-100, reason="fix", idempotency_key="fix:7")
    assert again.pk == first.pk
    assert numbers(user) == (900, 0)


# --- hold -----------------------------------------------------------------------------------


def test_hold_reserves_the_generation_cost(user):
    generation = GenerationFactory(owner=user, cost_credits=320)

    entry = ledger.hold(generation=generation)

    assert (entry.kind, entry.amount, entry.reserved_change) == (Kind.HOLD, 0, 320)
    assert (entry.balance_after, entry.reserved_after) == (1000, 320)
    assert entry.generation == generation
    assert CreditAccount.objects.get(user=user).available == 680
    assert ledger.broken_accounts() == []


def test_hold_over_available_raises_insufficient_credits_and_moves_nothing(user, held):
    expensive = GenerationFactory(owner=user, cost_credits=681)

    with pytest.raises(InsufficientCredits) as caught:
        ledger.hold(generation=expensive)

    assert (caught.value.required, caught.value.available) == (681, 680)
    assert "681" in caught.value.message and "680" in caught.value.message
    assert numbers(user) == (1000, 320)
    assert not LedgerEntry.objects.filter(generation=expensive).exists()


def test_hold_of_exactly_the_available_credits_succeeds(user, held):
    ledger.hold(generation=GenerationFactory(owner=user, cost_credits=680))
    assert numbers(user) == (1000, 1000)


def test_hold_on_an_empty_account_is_refused(db):
    broke = UserFactory()
    with pytest.raises(InsufficientCredits) as caught:
        ledger.hold(generation=GenerationFactory(owner=broke, cost_credits=40))
    assert (caught.value.required, caught.value.available) == (40, 0)


def test_hold_twice_for_one_generation_reserves_once(user, held):
    again = ledger.hold(generation=held)
    assert again == LedgerEntry.objects.get(generation=held, kind=Kind.HOLD)
    assert numbers(user) == (1000, 320)


# --- capture and release --------------------------------------------------------------------


def test_capture_spends_the_held_credits(user, held):
    entry = ledger.capture(generation=held)

    assert (entry.kind, entry.amount, entry.reserved_change) == (Kind.CAPTURE, -320, -320)
    assert (entry.balance_after, entry.reserved_after) == (680, 0)
    assert numbers(user) == (680, 0)
    assert ledger.broken_accounts() == []


def test_release_gives_the_held_credits_back(user, held):
    entry = ledger.release(generation=held, reason="fal error")

    assert (entry.kind, entry.amount, entry.reserved_change) == (Kind.RELEASE, 0, -320)
    assert (entry.balance_after, entry.reserved_after, entry.reason) == (1000, 0, "fal error")
    assert numbers(user) == (1000, 0)
    assert ledger.broken_accounts() == []


def test_capture_twice_spends_once(user, held):
    first = ledger.capture(generation=held)
    again = ledger.capture(generation=held)
    assert again.pk == first.pk
    assert numbers(user) == (680, 0)


def test_release_twice_releases_once(user, held):
    first = ledger.release(generation=held)
    again = ledger.release(generation=held)
    assert again.pk == first.pk
    assert numbers(user) == (1000, 0)


def test_capture_after_release_returns_the_release_and_moves_nothing(user, held):
    released = ledger.release(generation=held)

    late = ledger.capture(generation=held)

    assert (late.pk, late.kind) == (released.pk, Kind.RELEASE)
    assert numbers(user) == (1000, 0)
    assert LedgerEntry.objects.filter(generation=held).count() == 2


def test_release_after_capture_returns_the_capture_and_moves_nothing(user, held):
    captured = ledger.capture(generation=held)

    late = ledger.release(generation=held)

    assert (late.pk, late.kind) == (captured.pk, Kind.CAPTURE)
    assert numbers(user) == (680, 0)


@pytest.mark.parametrize("settle", [ledger.capture, ledger.release])
def test_settling_a_generation_without_a_hold_is_an_error(user, settle):
    generation = GenerationFactory(owner=user, cost_credits=40)
    with pytest.raises(LedgerError):
        settle(generation=generation)
    assert numbers(user) == (1000, 0)


# --- capture_part (a refund policy charging a share) -----------------------------------------


def test_capture_part_spends_the_share_and_frees_the_rest_in_one_settlement(user, held):
    entry = ledger.capture_part(generation=held, credits=160, reason="content_policy: 50%")

    assert (entry.kind, entry.amount, entry.reserved_change) == (Kind.CAPTURE, -160, -320)
    assert (entry.balance_after, entry.reserved_after) == (840, 0)
    assert entry.reason == "content_policy: 50%"
    assert numbers(user) == (840, 0)
    assert list(
        LedgerEntry.objects.filter(generation=held).order_by("id").values_list("kind", flat=True)
    ) == [Kind.HOLD, Kind.CAPTURE]
    assert ledger.broken_accounts() == []
    call_command("check_ledger", stdout=io.StringIO())


def test_capture_part_of_the_whole_hold_is_a_full_capture(user, held):
    entry = ledger.capture_part(generation=held, credits=320, reason="charged")
    assert (entry.amount, entry.reserved_change) == (-320, -320)
    assert numbers(user) == (680, 0)
    assert ledger.broken_accounts() == []


@pytest.mark.parametrize("credits", [321, 10_000])
def test_capture_part_never_charges_more_than_the_hold(user, held, credits):
    with pytest.raises(LedgerError):
        ledger.capture_part(generation=held, credits=credits, reason="too much")
    assert numbers(user) == (1000, 320)
    assert not LedgerEntry.objects.filter(generation=held, kind=Kind.CAPTURE).exists()


@pytest.mark.parametrize("credits", [0, -5, True, 2.5])
def test_capture_part_refuses_anything_but_a_positive_whole_number(user, held, credits):
    with pytest.raises(ValidationFailed):
        ledger.capture_part(generation=held, credits=credits, reason="x")
    assert numbers(user) == (1000, 320)


def test_capture_part_is_the_one_settlement_of_its_generation(user, held):
    first = ledger.capture_part(generation=held, credits=100, reason="share")

    again = ledger.capture_part(generation=held, credits=100, reason="share")
    late_release = ledger.release(generation=held)
    late_capture = ledger.capture(generation=held)

    assert again.pk == late_release.pk == late_capture.pk == first.pk
    assert numbers(user) == (900, 0)
    assert ledger.broken_accounts() == []


def test_capture_part_after_a_release_moves_nothing(user, held):
    released = ledger.release(generation=held)
    late = ledger.capture_part(generation=held, credits=100, reason="share")
    assert (late.pk, late.kind) == (released.pk, Kind.RELEASE)
    assert numbers(user) == (1000, 0)


def test_refund_after_capture_part_gives_back_the_share_only(user, held, staff_user):
    ledger.capture_part(generation=held, credits=160, reason="share")

    refund = ledger.refund(generation=held, reason="goodwill", actor=staff_user)

    assert refund.amount == 160
    assert numbers(user) == (1000, 0)
    assert ledger.broken_accounts() == []


def test_the_database_allows_one_settlement_per_generation(user, held):
    """Not only Python: a second settlement row is refused by a unique constraint."""
    ledger.capture(generation=held)
    account = CreditAccount.objects.get(user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            account=account,
            kind=Kind.RELEASE,
            amount=0,
            reserved_change=-320,
            balance_after=680,
            reserved_after=0,
            generation=held,
            idempotency_key="another-key",
        )


def test_the_database_allows_one_hold_per_generation(user, held):
    account = CreditAccount.objects.get(user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            account=account,
            kind=Kind.HOLD,
            amount=0,
            reserved_change=320,
            balance_after=1000,
            reserved_after=640,
            generation=held,
            idempotency_key="another-hold",
        )


@pytest.mark.parametrize(
    "balance_sql",
    ["balance = -1", "reserved = -1", "reserved = balance + 1"],
)
def test_the_database_refuses_an_account_below_its_reservations(user, balance_sql):
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE accounts_creditaccount SET {balance_sql} WHERE user_id = %s", [user.pk]
        )


# --- refund ---------------------------------------------------------------------------------


def test_refund_gives_back_what_a_capture_took(user, held, staff_user):
    ledger.capture(generation=held)

    entry = ledger.refund(generation=held, reason="bad output", actor=staff_user)

    assert (entry.kind, entry.amount, entry.reserved_change) == (Kind.REFUND, 320, 0)
    assert (entry.actor, entry.reason) == (staff_user, "bad output")
    assert numbers(user) == (1000, 0)
    assert ledger.broken_accounts() == []


def test_refund_twice_refunds_once(user, held):
    ledger.capture(generation=held)
    first = ledger.refund(generation=held, reason="bad output")
    again = ledger.refund(generation=held, reason="bad output, again")
    assert again.pk == first.pk
    assert numbers(user) == (1000, 0)


def test_refund_before_capture_is_an_error(user, held):
    with pytest.raises(LedgerError):
        ledger.refund(generation=held, reason="x")
    assert numbers(user) == (1000, 320)


def test_refund_after_release_is_an_error(user, held):
    ledger.release(generation=held)
    with pytest.raises(LedgerError):
        ledger.refund(generation=held, reason="x")
    assert numbers(user) == (1000, 0)


def test_refund_without_a_reason_is_refused(user, held):
    ledger.capture(generation=held)
    with pytest.raises(ValidationFailed):
        ledger.refund(generation=held, reason=" ")
    assert numbers(user) == (680, 0)


# --- the invariant --------------------------------------------------------------------------


def test_broken_accounts_is_empty_after_a_full_lifecycle(user, other_user):
    a = GenerationFactory(owner=user, cost_credits=40)
    b = GenerationFactory(owner=user, cost_credits=80)
    c = GenerationFactory(owner=other_user, cost_credits=120)
    for generation in (a, b, c):
        ledger.hold(generation=generation)
    ledger.capture(generation=a)
    ledger.release(generation=b)
    ledger.refund(generation=a, reason="x")

    assert ledger.broken_accounts() == []
    assert numbers(user) == (1000, 0)
    assert numbers(other_user) == (1000, 120)


@pytest.mark.parametrize(
    ("corruption", "field"),
    [
        ("balance = balance + 7", "balance"),
        ("reserved = reserved + 7", "reserved"),
    ],
)
def test_broken_accounts_reports_a_cache_that_disagrees_with_the_entries(
    user, other_user, held, corruption, field
):
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE accounts_creditaccount SET {corruption} WHERE user_id = %s", [user.pk]
        )

    broken = ledger.broken_accounts()

    assert [row["user__username"] for row in broken] == [user.username]
    row = broken[0]
    assert row[field] == row[f"ledger_{field}"] + 7
