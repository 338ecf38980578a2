"""Credits owed after a refunded or disputed purchase: what a purchase still owes follows
the account's debt as it is paid (oldest purchase first), and `check_ledger` reconciles
`CreditAccount.owed` with the purchases and with the ledger.

Marked `pg`: `make test` runs them on SQLite and again on PostgreSQL; the races need
PostgreSQL's row locks to mean anything (SQLite serialises writers).
"""

from __future__ import annotations

import importlib
import threading
import time
from io import StringIO

import pytest
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.test import Client

from accounts import ledger
from accounts.models import CreditAccount, CreditPack, LedgerEntry, Purchase
from accounts.payments import checkout
from accounts.payments.checkout import ReturnUrls
from tests.factories import GenerationFactory, UserFactory
from tests.fakestripe import fixtures as fakestripe_fixtures
from tests.fakestripe.webhooks import StripeWebhooks
from tests.races import race

pytestmark = [pytest.mark.pg]

fake_stripe = fakestripe_fixtures.fake_stripe
stripe_webhooks = fakestripe_fixtures.stripe_webhooks


def check_ledger() -> str:
    out = StringIO()
    call_command("check_ledger", stdout=out)
    return out.getvalue()


def assert_ledger_clean() -> None:
    assert ledger.broken_accounts() == []
    assert "ledger OK" in check_ledger()


def owed(user) -> int:
    return CreditAccount.objects.get(user=user).owed


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


def reversal(purchase: Purchase) -> tuple[int, int]:
    """(credits_taken_back, credits_owed) as stored now."""
    purchase.refresh_from_db()
    return purchase.credits_taken_back, purchase.credits_owed


def spend(user, credits: int) -> None:
    generation = GenerationFactory(owner=user, cost_credits=credits)
    ledger.hold(generation=generation)
    ledger.capture(generation=generation)


@pytest.fixture
def buyer(db):
    return UserFactory(username="buyer")


@pytest.fixture
def buy(fake_stripe, buyer):
    """`buy()`: a purchase of 1,000 credits for 10.00, paid through Stripe's webhook."""
    pack = CreditPack.objects.create(name="Starter", credits=1000, price_cents=1000)

    def make() -> Purchase:
        purchase = checkout.start_checkout(
            user=buyer,
            pack=pack,
            return_urls=lambda pk: ReturnUrls(success="http://t/ok", cancel="http://t/no"),
        ).purchase
        hooks = StripeWebhooks(Client(), fake_stripe.webhook_secret)
        assert hooks.deliver(fake_stripe.complete(purchase.stripe_session_id)).status_code == 200
        return purchase

    return make


def refund(fake_stripe, purchase: Purchase, amount: int | None = None) -> str:
    hooks = StripeWebhooks(Client(), fake_stripe.webhook_secret)
    event = fake_stripe.refund(purchase.stripe_session_id, amount=amount)
    return hooks.deliver(event).json()["outcome"]


# --- owed follows the debt ------------------------------------------------------------


@pytest.mark.django_db
def test_a_refund_after_credits_were_spent_leaves_owed_on_the_account_and_the_purchase(
    buy, buyer, fake_stripe
):
    purchase = buy()
    spend(buyer, 800)

    assert refund(fake_stripe, purchase) == "taken_back"

    assert (balance(buyer), owed(buyer)) == (0, 800)
    assert reversal(purchase) == (200, 800)
    assert_ledger_clean()


@pytest.mark.django_db
def test_a_grant_pays_part_of_what_a_purchase_owes_then_all_of_it(buy, buyer, fake_stripe):
    purchase = buy()
    spend(buyer, 1000)
    refund(fake_stripe, purchase)
    assert reversal(purchase) == (0, 1000)

    ledger.grant(user=buyer, amount=300, reason="voucher")

    assert (balance(buyer), owed(buyer)) == (0, 700)
    assert reversal(purchase) == (300, 700)  # paid credits count as taken back
    assert_ledger_clean()

    ledger.grant(user=buyer, amount=1000, reason="goodwill")

    assert (balance(buyer), owed(buyer)) == (300, 0)
    assert reversal(purchase) == (1000, 0)
    assert_ledger_clean()


@pytest.mark.django_db
def test_two_purchases_owing_are_paid_oldest_first(buy, buyer, fake_stripe):
    older, newer = buy(), buy()
    spend(buyer, 2000)
    refund(fake_stripe, newer)  # the newer one is refunded first
    refund(fake_stripe, older)
    assert (reversal(older), reversal(newer), owed(buyer)) == ((0, 1000), (0, 1000), 2000)

    ledger.grant(user=buyer, amount=1200, reason="voucher")

    assert owed(buyer) == 800
    assert reversal(older) == (1000, 0)
    assert reversal(newer) == (200, 800)
    assert_ledger_clean()


@pytest.mark.django_db
def test_a_refund_delivered_again_after_the_debt_was_paid_takes_nothing_more(
    buy, buyer, fake_stripe
):
    purchase = buy()
    sid = purchase.stripe_session_id
    spend(buyer, 1000)
    event = fake_stripe.refund(sid)
    hooks = StripeWebhooks(Client(), fake_stripe.webhook_secret)
    hooks.deliver(event)
    ledger.grant(user=buyer, amount=1500, reason="goodwill")  # pays the 1,000 owed

    assert hooks.deliver(event).json()["outcome"] == "recorded"

    assert (balance(buyer), owed(buyer)) == (500, 0)
    assert reversal(purchase) == (1000, 0)
    assert_ledger_clean()


@pytest.mark.django_db
def test_a_won_dispute_clears_its_own_debt_and_the_older_purchase_keeps_what_it_owes(
    buy, buyer, fake_stripe, stripe_webhooks
):
    older, disputed = buy(), buy()
    spend(buyer, 2000)
    refund(fake_stripe, older)
    stripe_webhooks.deliver(fake_stripe.dispute(disputed.stripe_session_id))
    assert owed(buyer) == 2000
    ledger.grant(user=buyer, amount=500, reason="voucher")  # pays half of the older one
    assert (reversal(older), reversal(disputed)) == ((500, 500), (0, 1000))

    won = fake_stripe.close_dispute(disputed.stripe_session_id, won=True)
    assert stripe_webhooks.deliver(won).json()["outcome"] == "given_back"

    # As if the dispute had not happened: the refund of the older one still owes 500.
    assert (balance(buyer), owed(buyer)) == (0, 500)
    assert reversal(disputed) == (0, 0)
    assert reversal(older) == (500, 500)
    assert_ledger_clean()


@pytest.mark.django_db
def test_a_won_dispute_returns_what_a_grant_had_paid_of_its_debt(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    sid = purchase.stripe_session_id
    spend(buyer, 1000)
    stripe_webhooks.deliver(fake_stripe.dispute(sid))
    ledger.grant(user=buyer, amount=300, reason="voucher")
    assert reversal(purchase) == (300, 700)

    stripe_webhooks.deliver(fake_stripe.close_dispute(sid, won=True))

    assert (balance(buyer), owed(buyer)) == (300, 0)  # the voucher's 300 are theirs again
    assert reversal(purchase) == (0, 0)
    assert_ledger_clean()


# --- check_ledger reconciles owed ---------------------------------------------------------


@pytest.fixture
def owing(buy, buyer, fake_stripe) -> Purchase:
    """A purchase refunded after 800 of its credits were spent, 300 of them paid since."""
    purchase = buy()
    spend(buyer, 800)
    refund(fake_stripe, purchase)
    ledger.grant(user=buyer, amount=300, reason="voucher")
    assert reversal(purchase) == (500, 500)
    assert_ledger_clean()
    return purchase


@pytest.mark.parametrize(
    ("account_owed", "purchase", "purchases", "from_ledger"),
    [
        # The purchase's debt edited by hand.
        (500, {"credits_owed": 499}, 499, 499),
        # The account's debt edited by hand.
        (600, {"credits_owed": 500}, 500, 500),
        # Both, alike (100 of what was taken back called owed again): only the ledger tells.
        (600, {"credits_owed": 600, "credits_taken_back": 400}, 600, 500),
    ],
    ids=["purchase", "account", "both"],
)
@pytest.mark.django_db
def test_check_ledger_reports_owed_that_disagrees_with_the_purchases_or_the_ledger(
    owing, buyer, account_owed, purchase, purchases, from_ledger
):
    CreditAccount.objects.filter(user=buyer).update(owed=account_owed)
    Purchase.objects.filter(pk=owing.pk).update(**purchase)

    [row] = ledger.broken_accounts()

    assert (row["user__username"], row["owed"]) == ("buyer", account_owed)
    assert (row["purchases_owed"], row["ledger_owed"]) == (purchases, from_ledger)
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("check_ledger", stdout=out)
    assert failed.value.returncode == 1
    assert (
        f"owed cached {account_owed} vs purchases {purchases} vs ledger {from_ledger}"
        in out.getvalue()
    )


@pytest.mark.django_db
def test_check_ledger_reports_a_debt_paid_without_the_purchase_following(owing, buyer):
    # What the code before this rule left behind: the debt paid, the purchase still owing.
    Purchase.objects.filter(pk=owing.pk).update(credits_owed=800, credits_taken_back=200)

    [row] = ledger.broken_accounts()

    assert (row["owed"], row["purchases_owed"], row["ledger_owed"]) == (500, 800, 500)


@pytest.mark.django_db
def test_check_ledger_counts_owed_with_one_query_whatever_the_number_of_users(
    buy, buyer, fake_stripe, django_assert_max_num_queries
):
    refund(fake_stripe, buy())
    for _ in range(5):
        UserFactory(credits=100)

    with django_assert_max_num_queries(2):
        assert ledger.broken_accounts() == []


@pytest.mark.django_db
def test_the_migration_brings_purchases_written_before_down_to_the_debt(buy, buyer, fake_stripe):
    older, newer = buy(), buy()
    spend(buyer, 2000)
    refund(fake_stripe, older)
    refund(fake_stripe, newer)
    ledger.grant(user=buyer, amount=1500, reason="voucher")
    # As the code before this rule left them: the debt paid, the purchases still owing.
    Purchase.objects.update(credits_owed=1000, credits_taken_back=0)
    assert ledger.broken_accounts() != []

    migration = importlib.import_module("accounts.migrations.0007_purchase_owed")
    migration.purchases_follow_debt(django_apps, None)

    assert owed(buyer) == 500
    assert (reversal(older), reversal(newer)) == ((1000, 0), (500, 500))
    assert_ledger_clean()


# --- races (PostgreSQL) -----------------------------------------------------------------


@pytest.fixture
def _shared_database():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.fail("These tests need a database that threads share (see settings_test).")


@pytest.mark.django_db(transaction=True)
def test_concurrent_grants_paying_one_debt_keep_the_purchases_equal_to_the_account(
    _shared_database, buy, buyer, fake_stripe
):
    older, newer = buy(), buy()
    spend(buyer, 2000)
    refund(fake_stripe, older)
    refund(fake_stripe, newer)

    results = race(8, lambda i: ledger.grant(user=buyer, amount=300, reason=f"grant {i}"))

    assert [kind for kind, _ in results] == ["ok"] * 8, results[:3]
    assert (balance(buyer), owed(buyer)) == (400, 0)
    assert (reversal(older), reversal(newer)) == ((1000, 0), (1000, 0))
    assert_ledger_clean()


def _waiting_for_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def _until_waiting(count: int) -> None:
    deadline = time.monotonic() + 10
    while _waiting_for_locks() < count:
        assert time.monotonic() < deadline, "a thread never waited for the account"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_refund_of_an_owing_purchase_and_a_grant_paying_its_debt_do_not_deadlock(
    buy, buyer, fake_stripe
):
    """The grant holds the account and lowers the purchase; the refund webhook locks the
    account before the purchase, so neither waits for the other in a circle."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    purchase = buy()
    spend(buyer, 1000)
    refund(fake_stripe, purchase, amount=500)  # owes 500; the rest is refunded below
    event = fake_stripe.refund(purchase.stripe_session_id)
    results: dict[str, object] = {}

    def run(name: str, action) -> threading.Thread:
        def target() -> None:
            try:
                results[name] = action()
            except BaseException as exc:  # reported by the asserts below
                results[name] = exc
            finally:
                connections.close_all()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        return thread

    with transaction.atomic():  # the account is busy: both queue behind this lock
        ledger.lock_account(user_id=buyer.pk)
        grant = run("grant", lambda: ledger.grant(user=buyer, amount=800, reason="voucher"))
        _until_waiting(1)
        hooks = StripeWebhooks(Client(), fake_stripe.webhook_secret)
        webhook = run("refund", lambda: hooks.deliver(event).status_code)
        _until_waiting(2)
    for thread in (grant, webhook):
        thread.join(timeout=30)

    assert isinstance(results["grant"], LedgerEntry), results
    assert results["refund"] == 200, results
    # The grant paid the 500 owed first; the refund then took 300 and left 200 owed.
    assert (balance(buyer), owed(buyer)) == (0, 200)
    assert reversal(purchase) == (800, 200)
    assert_ledger_clean()
