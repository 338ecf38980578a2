"""Stripe delivers one event many times at once (its retries overlap our slow answers):
20 concurrent deliveries grant exactly once, and 20 concurrent refunds take back once.

Marked `pg`: `make test` runs them on SQLite (writers serialised by BEGIN IMMEDIATE) and on
PostgreSQL (the purchase's row lock under READ COMMITTED), where they matter most.
"""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts import ledger
from accounts.models import CreditAccount, CreditPack, LedgerEntry, Purchase
from accounts.payments import checkout
from accounts.payments.checkout import ReturnUrls
from tests.factories import GenerationFactory, UserFactory
from tests.fakestripe import fixtures as fakestripe_fixtures
from tests.fakestripe.webhooks import StripeWebhooks
from tests.races import race

pytestmark = [pytest.mark.pg, pytest.mark.django_db(transaction=True)]

fake_stripe = fakestripe_fixtures.fake_stripe

Kind = LedgerEntry.Kind
DELIVERIES = 20


@pytest.fixture(autouse=True)
def _shared_database():
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.fail("These tests need a database that threads share (see settings_test).")


@pytest.fixture
def purchase(fake_stripe) -> Purchase:
    buyer = UserFactory(username="buyer")
    pack = CreditPack.objects.create(name="Starter", credits=1000, price_cents=1000)
    return checkout.start_checkout(
        user=buyer,
        pack=pack,
        return_urls=lambda pk: ReturnUrls(success="http://t/ok", cancel="http://t/no"),
    ).purchase


def deliver_concurrently(fake, events) -> list[tuple[str, object]]:
    def deliver(index: int):
        hooks = StripeWebhooks(Client(), fake.webhook_secret)
        return hooks.deliver(events[index % len(events)])

    return race(DELIVERIES, deliver)


def assert_ledger_clean() -> None:
    assert ledger.broken_accounts() == []
    out = StringIO()
    call_command("check_ledger", stdout=out)
    assert "ledger OK" in out.getvalue()


def test_20_concurrent_deliveries_of_one_paid_event_grant_once(fake_stripe, purchase):
    event = fake_stripe.complete(purchase.stripe_session_id)

    results = deliver_concurrently(fake_stripe, [event])

    assert [kind for kind, _ in results] == ["ok"] * DELIVERIES, results[:3]
    assert {response.status_code for _, response in results} == {200}
    outcomes = Counter(response.json()["outcome"] for _, response in results)
    assert outcomes == {"paid": 1, "already_paid": DELIVERIES - 1}
    assert LedgerEntry.objects.filter(kind=Kind.TOPUP).count() == 1
    assert CreditAccount.objects.get(user=purchase.user).balance == 1000
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert_ledger_clean()


def test_concurrent_completed_and_async_succeeded_grant_once(fake_stripe, purchase):
    sid = purchase.stripe_session_id
    events = [fake_stripe.complete(sid, paid=False), fake_stripe.async_succeed(sid)]

    results = deliver_concurrently(fake_stripe, events)

    assert {response.status_code for _, response in results} == {200}, results[:3]
    assert LedgerEntry.objects.filter(kind=Kind.TOPUP).count() == 1
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert_ledger_clean()


def test_20_concurrent_refund_deliveries_take_back_once(fake_stripe, purchase):
    StripeWebhooks(Client(), fake_stripe.webhook_secret).deliver(
        fake_stripe.complete(purchase.stripe_session_id)
    )
    spent = GenerationFactory(owner=purchase.user, cost_credits=700)
    ledger.hold(generation=spent)
    ledger.capture(generation=spent)
    refund = fake_stripe.refund(purchase.stripe_session_id)

    results = deliver_concurrently(fake_stripe, [refund])

    assert {response.status_code for _, response in results} == {200}, results[:3]
    outcomes = Counter(response.json()["outcome"] for _, response in results)
    assert outcomes == {"taken_back": 1, "recorded": DELIVERIES - 1}
    account = CreditAccount.objects.get(user=purchase.user)
    assert (account.balance, account.owed) == (0, 700)
    purchase.refresh_from_db()
    assert (purchase.credits_taken_back, purchase.credits_owed) == (300, 700)
    assert_ledger_clean()
