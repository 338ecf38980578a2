"""The operator's commands: grant_credits, check_ledger, seed_demo."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from accounts import ledger
from accounts.models import LedgerEntry, User
from tests.credits import numbers
from tests.factories import GenerationFactory

Kind = LedgerEntry.Kind
pytestmark = pytest.mark.pg


def run(*args, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


# --- grant_credits --------------------------------------------------------------------------


def test_grant_credits_with_a_positive_amount_is_a_grant(user):
    output = run("grant_credits", user.username, "250", reason="conference promo")

    entry = LedgerEntry.objects.filter(account__user=user).first()
    assert (entry.kind, entry.amount, entry.reason) == (Kind.GRANT, 250, "conference promo")
    assert numbers(user) == (1250, 0)
    assert "balance 1250, reserved 0, available 1250" in output


def test_grant_credits_with_a_negative_amount_is_an_adjustment(user):
    output = run("grant_credits", user.username, "-300", reason="granted twice")

    entry = LedgerEntry.objects.filter(account__user=user).first()
    assert (entry.kind, entry.amount, entry.reason) == (Kind.ADJUSTMENT, -300, "granted twice")
    assert numbers(user) == (700, 0)
    assert "Deducted 300 credits" in output


def test_grant_credits_never_deducts_below_what_is_reserved(user):
    ledger.hold(generation=GenerationFactory(owner=user, cost_credits=800))

    with pytest.raises(CommandError) as caught:
        run("grant_credits", user.username, "-201", reason="correction")

    assert "only 200 are not reserved" in str(caught.value)
    assert numbers(user) == (1000, 800)


def test_grant_credits_for_an_unknown_user_fails_clearly(db):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("grant_credits", "nobody", "100", reason="x")
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize(("amount", "reason"), [("0", "x"), ("10", "   ")])
def test_grant_credits_refuses_zero_and_a_blank_reason(user, amount, reason):
    with pytest.raises(CommandError):
        run("grant_credits", user.username, amount, reason=reason)
    assert numbers(user) == (1000, 0)


def test_grant_credits_requires_a_reason(user):
    with pytest.raises(CommandError, match="--reason"):
        run("grant_credits", user.username, "100")


def test_grant_credits_refuses_a_non_integer_amount(user):
    with pytest.raises(CommandError):
        run("grant_credits", user.username, "12.5", reason="x")
    assert numbers(user) == (1000, 0)


def test_grant_credits_with_the_same_idempotency_key_applies_once(user):
    run("grant_credits", user.username, "100", reason="batch", idempotency_key="batch-42")
    output = run("grant_credits", user.username, "100", reason="batch", idempotency_key="batch-42")

    assert "Already applied" in output
    assert numbers(user) == (1100, 0)


# --- check_ledger ---------------------------------------------------------------------------


def test_check_ledger_passes_on_a_consistent_database(user, other_user):
    generation = GenerationFactory(owner=user, cost_credits=40)
    ledger.hold(generation=generation)
    ledger.capture(generation=generation)

    output = run("check_ledger")

    assert "ledger OK: 2 accounts checked" in output


def test_check_ledger_exits_1_on_a_corrupted_balance(user, other_user):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_creditaccount SET balance = balance + 7 WHERE user_id = %s",
            [user.pk],
        )
    out = StringIO()

    with pytest.raises(CommandError) as caught:
        call_command("check_ledger", stdout=out)

    assert caught.value.returncode == 1
    assert "1 of 2 accounts" in str(caught.value)
    report = out.getvalue()
    assert f"({user.username}): balance cached 1007 vs ledger 1000" in report
    assert other_user.username not in report


def test_check_ledger_exits_1_when_every_balance_is_corrupted(user, other_user):
    """The brief's exact corruption: one UPDATE for all accounts."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_creditaccount SET balance = balance + 7")

    with pytest.raises(CommandError) as caught:
        run("check_ledger")

    assert caught.value.returncode == 1
    assert "2 of 2 accounts" in str(caught.value)


def test_check_ledger_reports_a_reservation_without_an_open_hold(user):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_creditaccount SET reserved = 40 WHERE user_id = %s", [user.pk]
        )
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("check_ledger", stdout=out)
    assert "reserved cached 40 vs ledger 0 vs open holds 0" in out.getvalue()


# --- seed_demo ------------------------------------------------------------------------------


def test_seed_demo_creates_the_admin_and_a_demo_user_with_credits(db, settings):
    settings.DEBUG = True
    settings.FAL_KEY = ""

    output = run("seed_demo")

    admin = User.objects.get(username="admin")
    demo = User.objects.get(username="demo")
    assert admin.is_staff and admin.is_superuser and admin.check_password("admin")
    assert not demo.is_staff and demo.check_password("demo")
    assert numbers(demo) == (5000, 0)
    assert "'demo'" in output and "password 'demo'" in output
    assert "simulated fal backend" in output
    assert ledger.broken_accounts() == []


def test_seed_demo_twice_grants_once_and_keeps_a_changed_password(db, settings):
    settings.DEBUG = True
    run("seed_demo")
    demo = User.objects.get(username="demo")
    demo.set_password("my own secret")
    demo.save()

    output = run("seed_demo")

    demo.refresh_from_db()
    assert numbers(demo) == (5000, 0)
    assert LedgerEntry.objects.filter(account__user=demo).count() == 1
    assert demo.check_password("my own secret")
    assert "--reset-passwords" in output
    assert User.objects.filter(username__in=["admin", "demo"]).count() == 2


def test_seed_demo_reset_passwords_restores_the_documented_ones(db, settings):
    settings.DEBUG = True
    run("seed_demo")
    User.objects.filter(username="admin").update(password="!")

    run("seed_demo", reset_passwords=True)

    assert User.objects.get(username="admin").check_password("admin")


def test_seed_demo_refuses_to_run_without_debug(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        run("seed_demo")
    assert not User.objects.filter(username__in=["admin", "demo"]).exists()


def test_seed_demo_does_not_mention_the_simulator_when_fal_is_configured(db, settings):
    settings.DEBUG = True
    settings.FAL_KEY = "key-id:key-secret"
    assert "simulated" not in run("seed_demo")
