"""The purchase receipt: sent once when Stripe's payment grants the credits, whatever
Stripe redelivers; never for a purchase that is not paid."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import CreditPack, Purchase
from accounts.payments import fulfilment
from accounts.payments.stripe_gateway import CheckoutSession
from notifications import tasks
from notifications.services import send_purchase_receipt
from tests.notifications.conftest import html_of

pytestmark = [pytest.mark.django_db, pytest.mark.pg]  # partial unique indexes decide

RECEIPT = "Your receipt: 1200 credits"


@pytest.fixture
def purchase(user) -> Purchase:
    pack = CreditPack.objects.create(name="Studio pack", credits=1200, price_cents=1250)
    return Purchase.objects.create(
        user=user,
        pack=pack,
        credits=pack.credits,
        amount_cents=pack.price_cents,
        currency=pack.currency,
        stripe_session_id="cs_test_receipt",
    )


def paid_session() -> CheckoutSession:
    return CheckoutSession(
        id="cs_test_receipt",
        url=None,
        status="complete",
        payment_status="paid",
        payment_intent="pi_test_receipt",
    )


def test_paying_sends_one_receipt_whatever_stripe_redelivers(user, purchase, at_commit):
    with at_commit():
        assert fulfilment.mark_paid(paid_session()) == "paid"
    with at_commit():
        fulfilment.mark_paid(paid_session())  # the same event again
        tasks.purchase_receipt(str(purchase.pk))  # the task run twice
    assert send_purchase_receipt(purchase_id=purchase.pk) is False

    (message,) = mail.outbox
    assert message.subject == RECEIPT
    assert message.to == [user.email]
    for part in (message.body, html_of(message)):
        assert "Studio pack" in part
        assert "$12.50" in part
        assert "pi_test_receipt" in part
    assert "https://veo.example.com/credits/" in message.body
    assert "List-Unsubscribe" not in message.extra_headers  # a receipt always comes


def test_no_receipt_for_a_purchase_not_paid(purchase, at_commit):
    assert send_purchase_receipt(purchase_id=purchase.pk) is False
    assert send_purchase_receipt(purchase_id=purchase.pk + 1000) is False
    assert mail.outbox == []


def test_the_receipt_comes_even_with_notification_emails_switched_off(user, purchase, at_commit):
    from notifications.preferences import update_preferences

    update_preferences(
        user=user, video_emails=False, low_balance_emails=False, low_balance_threshold=None
    )
    with at_commit():
        fulfilment.mark_paid(paid_session())

    assert [m.subject for m in mail.outbox] == [RECEIPT]
