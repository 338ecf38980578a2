"""The fake Stripe itself: it answers the real `stripe` client as Stripe does, and its
signatures are the ones `stripe.Webhook` accepts."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from tests.fakestripe import FakeStripe, signature_header
from tests.fakestripe.forms import decode


@pytest.fixture
def fake():
    with FakeStripe() as server:
        yield server


def client(fake: FakeStripe, key: str | None = None) -> stripe.StripeClient:
    return stripe.StripeClient(
        key or fake.api_key, base_addresses={"api": fake.base_url}, max_network_retries=0
    )


PARAMS = {
    "mode": "payment",
    "line_items": [
        {
            "quantity": 1,
            "price_data": {
                "currency": "usd",
                "unit_amount": 1500,
                "product_data": {"name": "Pack"},
            },
        }
    ],
    "metadata": {"purchase_id": "7"},
    "client_reference_id": "7",
    "success_url": "https://example.com/ok",
    "cancel_url": "https://example.com/no",
}


def test_decodes_stripes_bracketed_form_keys():
    body = (
        "mode=payment&line_items[0][price_data][currency]=usd&line_items[0][quantity]=1"
        "&line_items[1][quantity]=2&metadata[a]=1&metadata[b]="
    )
    assert decode(body) == {
        "mode": "payment",
        "line_items": [{"price_data": {"currency": "usd"}, "quantity": "1"}, {"quantity": "2"}],
        "metadata": {"a": "1", "b": ""},
    }


def test_creates_retrieves_and_lists_sessions_for_the_real_client(fake):
    api = client(fake)
    session = api.v1.checkout.sessions.create(params=PARAMS)
    assert session.id.startswith("cs_test_")
    assert (session.payment_status, session.status, session.amount_total) == (
        "unpaid",
        "open",
        1500,
    )
    assert session.url == f"{fake.base_url}/c/pay/{session.id}"
    assert session.metadata["purchase_id"] == "7"

    assert api.v1.checkout.sessions.retrieve(session.id).id == session.id
    event = fake.complete(session.id)
    intent = event["data"]["object"]["payment_intent"]
    listed = api.v1.checkout.sessions.list(params={"payment_intent": intent})
    assert [s.id for s in listed.data] == [session.id]
    with pytest.raises(stripe.InvalidRequestError):
        api.v1.checkout.sessions.retrieve("cs_test_missing")


def test_refuses_a_wrong_key_and_reused_idempotency_keys(fake):
    with pytest.raises(stripe.AuthenticationError):
        client(fake, key="sk_test_wrong").v1.checkout.sessions.create(params=PARAMS)
    api = client(fake)
    first = api.v1.checkout.sessions.create(params=PARAMS, options={"idempotency_key": "k"})
    again = api.v1.checkout.sessions.create(params=PARAMS, options={"idempotency_key": "k"})
    assert first.id == again.id
    other = {**PARAMS, "client_reference_id": "8"}
    with pytest.raises(stripe.IdempotencyError):
        api.v1.checkout.sessions.create(params=other, options={"idempotency_key": "k"})


def test_signatures_verify_with_stripes_own_code_and_only_with_the_secret():
    body = json.dumps({"id": "evt_1", "object": "event", "type": "x", "data": {"object": {}}})
    header = signature_header(body.encode(), ["whsec_old", "whsec_new"], test_mode_v0=True)
    assert stripe.WebhookSignature.verify_header(body, header, "whsec_new", tolerance=300)
    assert stripe.WebhookSignature.verify_header(body, header, "whsec_old", tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, header, "whsec_other", tolerance=300)
    old = signature_header(body.encode(), "whsec_new", timestamp=int(time.time()) - 301)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body, old, "whsec_new", tolerance=300)


def test_refunds_are_cumulative_on_the_charge(fake):
    session = client(fake).v1.checkout.sessions.create(params=PARAMS)
    fake.complete(session.id)
    first = fake.refund(session.id, amount=500)["data"]["object"]
    rest = fake.refund(session.id)["data"]["object"]
    assert (first["amount_refunded"], first["refunded"]) == (500, False)
    assert (rest["amount_refunded"], rest["refunded"]) == (1500, True)
