"""Stripe's webhook: genuine events grant one top-up per Checkout Session whatever the
redelivery or order; forgeries are refused with 400 and move nothing; refunds and
disputes take the credits back, and what was spent already becomes owed."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command

from accounts import ledger
from accounts.models import CreditAccount, CreditPack, LedgerEntry, Purchase
from accounts.payments import checkout
from accounts.payments.checkout import ReturnUrls
from accounts.payments.views import stripe_webhook
from tests.factories import GenerationFactory, UserFactory
from tests.fakestripe import fixtures as fakestripe_fixtures
from veoproject.exceptions import CreditsOwed, InsufficientCredits

# `pg`: make test runs them on PostgreSQL too (issue 13: SQLite and PostgreSQL).
pytestmark = [pytest.mark.pg, pytest.mark.django_db]

# The fake Stripe's fixtures, requested by name below.
fake_stripe = fakestripe_fixtures.fake_stripe
stripe_webhooks = fakestripe_fixtures.stripe_webhooks

Kind = LedgerEntry.Kind
GENERATIONS = "/api/v1/generations/"


def assert_ledger_clean() -> None:
    assert ledger.broken_accounts() == []
    out = StringIO()
    call_command("check_ledger", stdout=out)
    assert "ledger OK" in out.getvalue()


def account(user) -> CreditAccount:
    return CreditAccount.objects.get(user=user)


def topups(user) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(account__user=user, kind=Kind.TOPUP))


@pytest.fixture
def pack(db) -> CreditPack:
    return CreditPack.objects.create(name="Starter", credits=1000, price_cents=1000)


@pytest.fixture
def buyer(db):
    return UserFactory(username="buyer")


@pytest.fixture
def buy(fake_stripe, buyer, pack):
    """`buy()`: a purchase with an open session on the fake (as the buy form makes it)."""

    def make(user=None, pack_=None) -> Purchase:
        started = checkout.start_checkout(
            user=user or buyer,
            pack=pack_ or pack,
            return_urls=lambda pk: ReturnUrls(
                success=f"http://testserver/ok/{pk}/", cancel=f"http://testserver/no/{pk}/"
            ),
        )
        return started.purchase

    return make


# --- granting -------------------------------------------------------------------------


def test_paid_session_grants_one_topup_and_calls_the_paid_hook(
    buy, buyer, fake_stripe, stripe_webhooks, django_capture_on_commit_callbacks, caplog
):
    purchase = buy()
    event = fake_stripe.complete(purchase.stripe_session_id)

    with django_capture_on_commit_callbacks(execute=True):
        response = stripe_webhooks.deliver(event)

    assert response.status_code == 200
    assert response.json()["outcome"] == "paid"
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert purchase.paid_at is not None
    assert purchase.stripe_payment_intent_id == event["data"]["object"]["payment_intent"]
    [entry] = topups(buyer)
    assert (entry.amount, entry.idempotency_key) == (1000, f"stripe:{purchase.stripe_session_id}")
    assert purchase.grant_entry == entry
    assert account(buyer).available == 1000
    assert f"event=purchase_paid purchase={purchase.pk}" in caplog.text
    assert_ledger_clean()


def test_redelivered_event_grants_once(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    event = fake_stripe.complete(purchase.stripe_session_id)

    answers = stripe_webhooks.redeliver(event, 5)

    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["outcome"] for a in answers] == ["paid"] + ["already_paid"] * 4
    assert len(topups(buyer)) == 1
    assert account(buyer).balance == 1000
    assert_ledger_clean()


def test_two_purchases_of_one_user_grant_twice(buy, buyer, fake_stripe, stripe_webhooks):
    first, second = buy(), buy()
    stripe_webhooks.deliver(fake_stripe.complete(first.stripe_session_id))
    stripe_webhooks.deliver(fake_stripe.complete(second.stripe_session_id))
    assert len(topups(buyer)) == 2
    assert account(buyer).balance == 2000
    assert_ledger_clean()


def test_async_payment_paid_later_grants_on_success(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    completed = fake_stripe.complete(purchase.stripe_session_id, paid=False)

    assert stripe_webhooks.deliver(completed).json()["outcome"] == "processing"
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PROCESSING
    assert topups(buyer) == []

    succeeded = fake_stripe.async_succeed(purchase.stripe_session_id)
    assert stripe_webhooks.deliver(succeeded).json()["outcome"] == "paid"
    # Stripe redelivers both, late.
    stripe_webhooks.redeliver(completed, 2)
    stripe_webhooks.redeliver(succeeded, 2)

    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert len(topups(buyer)) == 1
    assert account(buyer).balance == 1000
    assert_ledger_clean()


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
def test_events_out_of_order_grant_once_and_end_paid(
    buy, buyer, fake_stripe, stripe_webhooks, order
):
    purchase = buy()
    sid = purchase.stripe_session_id
    events = [fake_stripe.complete(sid, paid=False), fake_stripe.async_succeed(sid)]

    answers = stripe_webhooks.in_order(events * 2, order=order)

    assert all(a.status_code == 200 for a in answers)
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert len(topups(buyer)) == 1
    assert_ledger_clean()


def test_async_payment_failed_grants_nothing(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid, paid=False))

    assert stripe_webhooks.deliver(fake_stripe.async_fail(sid)).json()["outcome"] == "failed"

    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.FAILED
    assert topups(buyer) == []
    assert account(buyer).balance == 0
    assert_ledger_clean()


def test_failed_event_after_success_changes_nothing(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    sid = purchase.stripe_session_id
    succeeded = fake_stripe.async_succeed(sid)
    failed = fake_stripe.event("checkout.session.async_payment_failed", succeeded["data"]["object"])
    stripe_webhooks.deliver(succeeded)

    assert stripe_webhooks.deliver(failed).json()["outcome"] == "unchanged"

    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert account(buyer).balance == 1000


def test_expired_session_is_recorded_and_grants_nothing(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    assert (
        stripe_webhooks.deliver(fake_stripe.expire(purchase.stripe_session_id)).json()["outcome"]
        == "expired"
    )
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.EXPIRED
    assert topups(buyer) == []


def test_session_not_ours_is_acknowledged_and_grants_nothing(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    event = fake_stripe.complete(purchase.stripe_session_id)
    event["data"]["object"]["id"] = "cs_test_someone_elses"
    event["data"]["object"]["metadata"] = {}
    event["data"]["object"]["client_reference_id"] = None

    response = stripe_webhooks.deliver(event)

    assert (response.status_code, response.json()["outcome"]) == (200, "unknown")
    assert not LedgerEntry.objects.filter(kind=Kind.TOPUP).exists()


def test_credits_come_from_the_purchase_not_from_the_event(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    event = fake_stripe.complete(purchase.stripe_session_id)
    event["data"]["object"]["metadata"]["credits"] = "999999"
    event["data"]["object"]["amount_total"] = 99999999

    stripe_webhooks.deliver(event)

    assert account(buyer).balance == 1000


@pytest.mark.parametrize(
    "foreign",
    [
        # A Payment Link on the same Stripe account: anyone sets ?client_reference_id=.
        {"client_reference_id": "{pk}", "metadata": {}, "amount_total": 100},
        # Our purchase id, but another user's session.
        {"metadata": {"purchase_id": "{pk}", "user_id": "{other}"}, "amount_total": 1000},
        # Our purchase id and user, but a cheaper payment.
        {"metadata": {"purchase_id": "{pk}", "user_id": "{user}"}, "amount_total": 100},
    ],
    ids=["client_reference_id", "other_user", "cheaper"],
)
def test_a_session_we_did_not_open_never_pays_for_our_purchase(
    foreign, buy, buyer, fake_stripe, stripe_webhooks
):
    # A purchase whose own checkout failed at Stripe: no session id was ever saved.
    purchase = buy()
    Purchase.objects.filter(pk=purchase.pk).update(
        stripe_session_id=None, status=Purchase.Status.FAILED
    )
    other = UserFactory()
    fill = {"pk": str(purchase.pk), "user": str(buyer.pk), "other": str(other.pk)}
    session = {
        "object": "checkout.session",
        "id": "cs_test_foreign_session",
        "payment_status": "paid",
        "status": "complete",
        "payment_intent": "pi_foreign",
        "currency": "usd",
        "client_reference_id": None,
        **foreign,
    }
    session["metadata"] = {k: v.format(**fill) for k, v in session["metadata"].items()}
    if session["client_reference_id"]:
        session["client_reference_id"] = session["client_reference_id"].format(**fill)

    answer = stripe_webhooks.deliver(fake_stripe.event("checkout.session.completed", session))

    assert answer.status_code == 200
    assert account(buyer).balance == 0
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.FAILED and purchase.stripe_session_id is None
    assert_ledger_clean()


def test_a_webhook_before_the_session_id_was_saved_finds_the_purchase_by_metadata(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    event = fake_stripe.complete(purchase.stripe_session_id)
    Purchase.objects.filter(pk=purchase.pk).update(stripe_session_id=None)

    assert stripe_webhooks.deliver(event).json()["outcome"] == "paid"

    purchase.refresh_from_db()
    assert purchase.stripe_session_id == event["data"]["object"]["id"]
    assert account(buyer).balance == 1000


def test_unrelated_event_types_are_acknowledged(stripe_webhooks, fake_stripe):
    event = fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"})
    response = stripe_webhooks.deliver(event)
    assert (response.status_code, response.json()["outcome"]) == (200, "ignored")


# --- forgeries --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forge",
    [
        lambda hooks, event, other: hooks.unsigned(event),
        lambda hooks, event, other: hooks.wrong_secret(event),
        lambda hooks, event, other: hooks.tampered(event, id="cs_test_other"),
        lambda hooks, event, other: hooks.stale(event),
        lambda hooks, event, other: hooks.replayed_signature(event, other),
        lambda hooks, event, other: hooks.malformed_header(event),
        lambda hooks, event, other: hooks.not_json(),
        lambda hooks, event, other: hooks.signed_but_not_an_event(),
    ],
    ids=[
        "unsigned",
        "wrong_secret",
        "tampered",
        "stale",
        "replayed_signature",
        "malformed_header",
        "not_json",
        "not_an_event",
    ],
)
def test_forged_deliveries_are_400_and_grant_nothing(
    buy, buyer, fake_stripe, stripe_webhooks, forge
):
    purchase = buy()
    event = fake_stripe.complete(purchase.stripe_session_id)
    other = fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"})

    response = forge(stripe_webhooks, event, other)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PENDING
    assert not LedgerEntry.objects.filter(kind=Kind.TOPUP).exists()
    assert account(buyer).balance == 0


def test_without_a_webhook_secret_every_delivery_is_refused(
    buy, buyer, fake_stripe, stripe_webhooks, settings
):
    purchase = buy()
    event = fake_stripe.complete(purchase.stripe_session_id)
    settings.STRIPE_WEBHOOK_SECRET = ""

    assert stripe_webhooks.deliver(event).status_code == 400
    assert account(buyer).balance == 0


def test_signed_event_with_a_malformed_object_is_400(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))
    refund = fake_stripe.refund(purchase.stripe_session_id)
    refund["data"]["object"]["amount_refunded"] = "1000"

    assert stripe_webhooks.deliver(refund).status_code == 400
    assert account(buyer).balance == 1000


def test_webhook_answers_get_with_405(client):
    assert client.get("/webhooks/stripe/").status_code == 405


# --- refunds and disputes ---------------------------------------------------------------


def spend(user, credits: int) -> None:
    generation = GenerationFactory(owner=user, cost_credits=credits)
    ledger.hold(generation=generation)
    ledger.capture(generation=generation)


def test_refund_takes_the_credits_back(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))

    refund = fake_stripe.refund(purchase.stripe_session_id)
    assert stripe_webhooks.deliver(refund).json()["outcome"] == "taken_back"
    stripe_webhooks.redeliver(refund, 3)

    purchase.refresh_from_db()
    assert (purchase.refunded_cents, purchase.credits_taken_back, purchase.credits_owed) == (
        1000,
        1000,
        0,
    )
    assert (account(buyer).balance, account(buyer).owed) == (0, 0)
    assert LedgerEntry.objects.filter(account__user=buyer, kind=Kind.ADJUSTMENT).count() == 1
    assert_ledger_clean()


def test_refund_after_credits_were_spent_records_owed_and_refuses_generations_until_a_topup(
    buy, buyer, fake_stripe, stripe_webhooks, bearer_client, valid_body
):
    purchase = buy()
    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))
    spend(buyer, 800)

    stripe_webhooks.deliver(fake_stripe.refund(purchase.stripe_session_id))

    purchase.refresh_from_db()
    assert (purchase.credits_taken_back, purchase.credits_owed) == (200, 800)
    acct = account(buyer)
    assert (acct.balance, acct.reserved, acct.owed) == (0, 0, 800)
    assert_ledger_clean()

    api = bearer_client(buyer)
    refused = api.post(GENERATIONS, valid_body, format="json")
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert (error["code"], error["owed"]) == ("credits_owed", 800)
    assert "800 credits" in error["message"]

    # A new pack pays the debt first, then the rest is available.
    second = buy()
    stripe_webhooks.deliver(fake_stripe.complete(second.stripe_session_id))
    acct = account(buyer)
    assert (acct.balance, acct.owed) == (200, 0)
    debt = LedgerEntry.objects.get(idempotency_key=f"debt:stripe:{second.stripe_session_id}")
    assert debt.amount == -800
    assert_ledger_clean()

    accepted = api.post(GENERATIONS, {**valid_body, "resolution": "720p", "duration": "4s",
                                      "generate_audio": False}, format="json")  # fmt: skip
    assert accepted.status_code == 201, accepted.json()


def test_a_small_topup_pays_part_of_the_debt_and_generations_stay_refused(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))
    spend(buyer, 1000)
    stripe_webhooks.deliver(fake_stripe.refund(purchase.stripe_session_id))
    assert account(buyer).owed == 1000

    ledger.grant(user=buyer, amount=300, reason="voucher")

    acct = account(buyer)
    assert (acct.balance, acct.owed) == (0, 700)
    ledger.grant(user=buyer, amount=500, reason="more")  # pays 500 more of it
    with pytest.raises(CreditsOwed) as caught:
        ledger.hold(generation=GenerationFactory(owner=buyer, cost_credits=10))
    assert caught.value.owed == 200
    assert account(buyer).reserved == 0
    assert_ledger_clean()


def test_staff_grant_settles_the_debt(buy, buyer, staff_user, fake_stripe, stripe_webhooks):
    from accounts import staff

    purchase = buy()
    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))
    spend(buyer, 1000)
    stripe_webhooks.deliver(fake_stripe.refund(purchase.stripe_session_id))

    staff.correct_credits(user=buyer, amount=1500, reason="goodwill", actor=staff_user)

    acct = account(buyer)
    assert (acct.balance, acct.owed) == (500, 0)
    ledger.hold(generation=GenerationFactory(owner=buyer, cost_credits=500))
    assert account(buyer).reserved == 500
    assert_ledger_clean()


def test_refund_never_takes_credits_reserved_for_videos_in_flight(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))
    generation = GenerationFactory(owner=buyer, cost_credits=600)
    ledger.hold(generation=generation)

    stripe_webhooks.deliver(fake_stripe.refund(purchase.stripe_session_id))

    acct = account(buyer)
    assert (acct.balance, acct.reserved, acct.owed) == (600, 600, 600)
    ledger.release(generation=generation)
    assert_ledger_clean()


def test_credits_given_back_after_a_refund_pay_the_debt_and_unblock_new_videos(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))
    generation = GenerationFactory(owner=buyer, cost_credits=600)
    ledger.hold(generation=generation)
    stripe_webhooks.deliver(fake_stripe.refund(purchase.stripe_session_id))

    ledger.release(generation=generation)  # the video failed: its 600 credits come back

    acct = account(buyer)
    assert (acct.balance, acct.reserved, acct.owed) == (0, 0, 0)  # they paid what was owed
    with pytest.raises(InsufficientCredits):  # refused for credits, no longer for a debt
        ledger.hold(generation=GenerationFactory(owner=buyer, cost_credits=10))
    assert_ledger_clean()


def test_partial_refunds_take_back_their_share_once_each(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid))

    first = fake_stripe.refund(sid, amount=250)
    second = fake_stripe.refund(sid, amount=250)
    stripe_webhooks.in_order([first, second, first, second], order="reversed")

    purchase.refresh_from_db()
    assert (purchase.refunded_cents, purchase.credits_taken_back) == (500, 500)
    assert account(buyer).balance == 500
    assert_ledger_clean()


def test_refund_delivered_before_the_payment_is_applied_when_the_payment_arrives(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    sid = purchase.stripe_session_id
    paid = fake_stripe.complete(sid)
    refund = fake_stripe.refund(sid)

    assert stripe_webhooks.deliver(refund).json()["outcome"] == "recorded"
    assert stripe_webhooks.deliver(paid).json()["outcome"] == "paid"

    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert (purchase.credits_taken_back, purchase.credits_owed) == (1000, 0)
    assert (account(buyer).balance, account(buyer).owed) == (0, 0)
    # The lookup went to Stripe: the session of the refunded PaymentIntent.
    lookups = [r for r in fake_stripe.requests if r["path"].startswith("/v1/checkout/sessions?")]
    assert len(lookups) == 1
    assert_ledger_clean()


def test_dispute_takes_the_credits_back_and_a_later_refund_adds_nothing(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid))
    spend(buyer, 400)

    dispute = fake_stripe.dispute(sid)
    assert stripe_webhooks.deliver(dispute).json()["outcome"] == "taken_back"
    stripe_webhooks.redeliver(dispute, 2)
    stripe_webhooks.deliver(fake_stripe.refund(sid))

    purchase.refresh_from_db()
    assert (purchase.disputed_cents, purchase.credits_taken_back, purchase.credits_owed) == (
        1000,
        600,
        400,
    )
    assert (account(buyer).balance, account(buyer).owed) == (0, 400)
    assert_ledger_clean()


def test_refund_of_a_charge_we_do_not_know_is_acknowledged(stripe_webhooks, fake_stripe, db):
    charge = {
        "id": "ch_test_unknown",
        "object": "charge",
        "amount": 500,
        "amount_refunded": 500,
        "payment_intent": "pi_test_unknown",
    }
    response = stripe_webhooks.deliver(fake_stripe.event("charge.refunded", charge))
    assert (response.status_code, response.json()["outcome"]) == (200, "unknown")


def test_the_ledger_kind_of_a_refund_is_an_adjustment_with_the_purchase_in_its_reason(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))
    stripe_webhooks.deliver(fake_stripe.refund(purchase.stripe_session_id))
    entry = LedgerEntry.objects.get(account__user=buyer, kind=Kind.ADJUSTMENT)
    assert entry.amount == -1000
    assert f"Purchase #{purchase.pk}" in entry.reason
    assert json.loads(json.dumps(entry.idempotency_key)).startswith(f"purchase:{purchase.pk}:")


def test_a_nonsense_content_length_is_refused_not_a_500(fake_stripe, rf):
    # Behind gunicorn this never arrives; behind runserver or another server it may.
    request = rf.post("/webhooks/stripe/", b"{}", content_type="application/json")
    request.META["CONTENT_LENGTH"] = "abc"

    assert stripe_webhook(request).status_code == 400


def test_a_refund_we_cannot_look_up_without_a_key_asks_for_redelivery(
    client, fake_stripe, stripe_webhooks, settings
):
    # The signing secret is set but the API key was removed: a refund of a charge we do
    # not know cannot be looked up at Stripe. Stripe is asked to redeliver (503), not 500.
    settings.STRIPE_SECRET_KEY = ""
    refund = fake_stripe.event(
        "charge.refunded",
        {
            "object": "charge",
            "id": "ch_unknown",
            "payment_intent": "pi_unknown",
            "amount_refunded": 500,
        },
    )

    assert stripe_webhooks.deliver(refund).status_code == 503


# --- a dispute's whole life: inquiry, withdrawal, won or lost, in any delivery order -------


def test_a_won_dispute_gives_the_credits_back_and_clears_what_was_owed(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid))
    spend(buyer, 400)
    stripe_webhooks.deliver(fake_stripe.dispute(sid))
    assert (account(buyer).balance, account(buyer).owed) == (0, 400)

    won = fake_stripe.close_dispute(sid, won=True)
    assert stripe_webhooks.deliver(won).json()["outcome"] == "given_back"
    stripe_webhooks.redeliver(won, 2)

    purchase.refresh_from_db()
    assert (purchase.disputed_cents, purchase.credits_taken_back, purchase.credits_owed) == (
        0,
        0,
        0,
    )
    # 1,000 bought, 400 spent: 600 left, nothing owed.
    assert (account(buyer).balance, account(buyer).owed) == (600, 0)
    assert_ledger_clean()


def test_a_dispute_created_event_delivered_after_the_win_takes_nothing(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid))
    created = fake_stripe.dispute(sid)
    won = fake_stripe.close_dispute(sid, won=True)

    stripe_webhooks.deliver(won)
    stripe_webhooks.deliver(created)  # late: Stripe does not promise order
    stripe_webhooks.redeliver(won, 1)

    purchase.refresh_from_db()
    assert (purchase.disputed_cents, purchase.credits_reversed) == (0, 0)
    assert (account(buyer).balance, account(buyer).owed) == (1000, 0)
    assert_ledger_clean()


def test_a_lost_dispute_keeps_the_credits_taken(buy, buyer, fake_stripe, stripe_webhooks):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid))
    stripe_webhooks.deliver(fake_stripe.dispute(sid))
    lost = fake_stripe.close_dispute(sid, won=False)
    assert stripe_webhooks.deliver(lost).json()["outcome"] == "recorded"

    purchase.refresh_from_db()
    assert (purchase.disputed_cents, purchase.credits_taken_back) == (1000, 1000)
    assert account(buyer).balance == 0
    assert_ledger_clean()


def test_an_inquiry_takes_nothing_until_it_becomes_a_chargeback(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid))
    inquiry = fake_stripe.dispute(sid, inquiry=True)
    assert stripe_webhooks.deliver(inquiry).json()["outcome"] == "recorded"
    assert account(buyer).balance == 1000

    escalated = fake_stripe.escalate_dispute(sid)
    assert stripe_webhooks.deliver(escalated).json()["outcome"] == "taken_back"
    assert account(buyer).balance == 0
    assert_ledger_clean()


def test_a_dispute_with_refunds_gives_back_only_what_the_dispute_took(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid))
    stripe_webhooks.deliver(fake_stripe.refund(sid, amount=300))  # 300 credits back to us
    stripe_webhooks.deliver(fake_stripe.dispute(sid, amount=700))
    assert account(buyer).balance == 0
    stripe_webhooks.deliver(fake_stripe.close_dispute(sid, won=True))

    purchase.refresh_from_db()
    assert (purchase.refunded_cents, purchase.disputed_cents, purchase.credits_reversed) == (
        300,
        0,
        300,
    )
    assert account(buyer).balance == 700
    assert_ledger_clean()


def test_a_dispute_event_is_retried_while_stripe_cannot_be_asked(
    buy, buyer, fake_stripe, stripe_webhooks
):
    purchase = buy()
    sid = purchase.stripe_session_id
    stripe_webhooks.deliver(fake_stripe.complete(sid))
    dispute = fake_stripe.dispute(sid)
    fake_stripe.fail_next(500, times=5)
    assert stripe_webhooks.deliver(dispute).status_code >= 500  # Stripe redelivers later
    assert account(buyer).balance == 1000
    assert stripe_webhooks.deliver(dispute).json()["outcome"] == "taken_back"
    assert account(buyer).balance == 0
