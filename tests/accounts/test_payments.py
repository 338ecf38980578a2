"""Buying credit packs: the credits page, the buy form against the fake Stripe, the pages
Stripe sends the buyer back to (which never grant), receipts, and the admin."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from accounts.models import CreditAccount, CreditPack, LedgerEntry, Purchase
from accounts.payments.money import format_amount, price_per_100_credits
from tests.factories import UserFactory
from tests.fakestripe import fixtures as fakestripe_fixtures
from tests.fakestripe.forms import decode

pytestmark = pytest.mark.django_db

# The fake Stripe's fixtures, requested by name below.
fake_stripe = fakestripe_fixtures.fake_stripe
stripe_webhooks = fakestripe_fixtures.stripe_webhooks

CREDITS = "/credits/"
BUY = "/credits/buy/"


@pytest.fixture
def packs(db) -> list[CreditPack]:
    return [
        CreditPack.objects.create(name="Starter", credits=1000, price_cents=1000, sort_order=1),
        CreditPack.objects.create(name="Studio", credits=5500, price_cents=5000, sort_order=2),
        CreditPack.objects.create(name="Retired", credits=10, price_cents=100, active=False),
    ]


@pytest.fixture
def buyer(client):
    user = UserFactory(username="buyer")
    client.force_login(user)
    return user


def balance(user) -> int:
    return CreditAccount.objects.get(user=user).balance


def session_request(fake) -> dict:
    [request] = [r for r in fake.requests if r["method"] == "POST"]
    return request


# --- the credits page ---------------------------------------------------------------------


def test_without_a_stripe_key_no_packs_are_offered_and_vouchers_are_explained(
    client, buyer, packs, settings
):
    settings.STRIPE_SECRET_KEY = ""

    page = client.get(CREDITS)

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="vouchers-only"' in html
    assert "Starter" not in html
    assert BUY not in html


def test_without_a_stripe_key_buying_is_refused_politely(client, buyer, packs, settings):
    settings.STRIPE_SECRET_KEY = ""

    response = client.post(BUY, {"pack": packs[0].pk}, follow=True)

    assert response.redirect_chain[-1][0] == CREDITS
    assert "voucher" in response.content.decode()
    assert not Purchase.objects.exists()


def test_credits_page_lists_active_packs_with_the_price_per_100_credits(
    client, buyer, packs, fake_stripe
):
    html = client.get(CREDITS).content.decode()

    assert "Starter" in html and "Studio" in html
    assert "Retired" not in html
    assert "$10.00" in html and "$1.00" in html  # Starter: $10 for 1,000
    assert "$50.00" in html and "$0.91" in html  # Studio: $50 for 5,500
    table = html[html.index('data-testid="packs"') :]
    assert table.index("Starter") < table.index("Studio")  # sort_order


def test_money_formats_follow_the_currency_minor_unit():
    assert format_amount(1250, "usd") == "$12.50"
    assert format_amount(500, "jpy") == "¥500"
    assert format_amount(999, "chf") == "9.99 CHF"
    assert format_amount(1234567, "eur") == "€12,345.67"
    assert price_per_100_credits(price_minor=5000, credits=5500, currency="usd") == "$0.91"


def test_credits_page_needs_login(client):
    response = client.get(CREDITS)
    assert response.status_code == 302


# --- buying ---------------------------------------------------------------------------------


def test_buying_creates_a_checkout_session_and_redirects_to_it(client, buyer, packs, fake_stripe):
    response = client.post(BUY, {"pack": packs[0].pk})

    assert response.status_code == 303
    purchase = Purchase.objects.get()
    session = fake_stripe.sessions[purchase.stripe_session_id]
    assert response["Location"] == session["url"]
    assert (purchase.user, purchase.pack, purchase.status) == (buyer, packs[0], "pending")
    assert (purchase.credits, purchase.amount_cents, purchase.currency) == (1000, 1000, "usd")

    sent = session_request(fake_stripe)
    assert sent["headers"]["authorization"] == f"Bearer {fake_stripe.api_key}"
    assert sent["headers"]["idempotency-key"] == f"purchase-{purchase.pk}"
    params = decode(sent["body"])
    assert params["mode"] == "payment"
    assert params["client_reference_id"] == str(purchase.pk)
    assert params["metadata"] == {
        "purchase_id": str(purchase.pk),
        "user_id": str(buyer.pk),
        "pack_id": str(packs[0].pk),
    }
    assert params["payment_intent_data"]["metadata"] == params["metadata"]
    price = params["line_items"][0]["price_data"]
    assert (price["currency"], price["unit_amount"]) == ("usd", "1000")
    assert urlsplit(params["success_url"]).path == f"/credits/purchases/{purchase.pk}/thanks/"
    assert urlsplit(params["cancel_url"]).path == f"/credits/purchases/{purchase.pk}/canceled/"
    assert params["customer_email"] == buyer.email
    # Nothing granted by starting a purchase.
    assert balance(buyer) == 0


def test_success_urls_use_public_base_url_when_set(client, buyer, packs, fake_stripe, settings):
    settings.PUBLIC_BASE_URL = "https://veo.example.com"
    client.post(BUY, {"pack": packs[0].pk})
    params = decode(session_request(fake_stripe)["body"])
    assert params["success_url"].startswith("https://veo.example.com/credits/purchases/")


@pytest.mark.parametrize("pack_value", ["retired", "999999", "", "1 OR 1=1"])
def test_buying_a_pack_not_on_sale_is_refused(client, buyer, packs, fake_stripe, pack_value):
    value = str(packs[2].pk) if pack_value == "retired" else pack_value

    response = client.post(BUY, {"pack": value}, follow=True)

    assert response.redirect_chain[-1][0] == CREDITS
    assert "not on sale" in response.content.decode()
    assert fake_stripe.requests == []
    assert not Purchase.objects.exists()


def test_buying_needs_post_and_login(client, packs, fake_stripe):
    assert client.post(BUY, {"pack": packs[0].pk}).status_code == 302  # to login
    client.force_login(UserFactory())
    assert client.get(BUY).status_code == 405
    assert fake_stripe.requests == []


def test_stripe_down_shows_a_message_and_the_purchase_is_marked_failed(
    client, buyer, packs, fake_stripe
):
    fake_stripe.fail_next(500, times=5)

    response = client.post(BUY, {"pack": packs[0].pk}, follow=True)

    assert response.status_code == 200
    assert "Nothing was charged" in response.content.decode()
    purchase = Purchase.objects.get()
    assert purchase.status == Purchase.Status.FAILED
    assert purchase.stripe_session_id is None
    assert balance(buyer) == 0


def test_a_retried_create_gets_the_same_session(client, buyer, packs, fake_stripe):
    # One 500, then stripe-python retries with the same Idempotency-Key.
    fake_stripe.fail_next(500)
    response = client.post(BUY, {"pack": packs[0].pk})
    assert response.status_code == 303
    posts = [r for r in fake_stripe.requests if r["method"] == "POST"]
    assert len(posts) == 2
    assert len(fake_stripe.sessions) == 1


# --- the pages Stripe sends the buyer back to -----------------------------------------------


def test_success_page_never_grants_and_shows_the_state(
    client, buyer, packs, fake_stripe, stripe_webhooks
):
    client.post(BUY, {"pack": packs[0].pk})
    purchase = Purchase.objects.get()
    url = f"/credits/purchases/{purchase.pk}/thanks/"

    for _ in range(3):
        page = client.get(url, {"session_id": purchase.stripe_session_id})
        assert page.status_code == 200
        assert "waiting for Stripe to confirm" in page.content.decode()
    assert balance(buyer) == 0
    assert not LedgerEntry.objects.filter(account__user=buyer).exists()

    stripe_webhooks.deliver(fake_stripe.complete(purchase.stripe_session_id))

    page = client.get(url)
    assert "Payment received" in page.content.decode()
    assert balance(buyer) == 1000


def test_cancel_page_says_nothing_was_charged(client, buyer, packs, fake_stripe):
    client.post(BUY, {"pack": packs[0].pk})
    purchase = Purchase.objects.get()

    page = client.get(f"/credits/purchases/{purchase.pk}/canceled/")

    assert page.status_code == 200
    assert "nothing was charged" in page.content.decode()


def test_purchase_pages_of_another_user_are_404(client, buyer, packs, fake_stripe):
    client.post(BUY, {"pack": packs[0].pk})
    purchase = Purchase.objects.get()
    client.force_login(UserFactory(username="nosy"))

    assert client.get(f"/credits/purchases/{purchase.pk}/thanks/").status_code == 404
    assert client.get(f"/credits/purchases/{purchase.pk}/canceled/").status_code == 404


def test_receipts_list_the_users_paid_purchases(client, buyer, packs, fake_stripe, stripe_webhooks):
    client.post(BUY, {"pack": packs[1].pk})
    client.post(BUY, {"pack": packs[0].pk})  # left open: not a receipt
    paid = Purchase.objects.get(pack=packs[1])
    stripe_webhooks.deliver(fake_stripe.complete(paid.stripe_session_id))
    other = UserFactory(username="other")
    Purchase.objects.create(user=other, pack=packs[0], credits=1, amount_cents=1, currency="usd")

    html = client.get(CREDITS).content.decode()

    assert 'data-testid="receipts"' in html
    assert f"#{paid.pk}" in html
    assert "Studio" in html and "$50.00" in html and "Paid" in html
    assert html.count("<tr>", html.index('data-testid="receipts"')) >= 1
    receipts = html[
        html.index('data-testid="receipts"') : html.index(
            "</table>", html.index('data-testid="receipts"')
        )
    ]
    assert "Waiting for payment" not in receipts


def test_owed_credits_are_shown_on_the_credits_page(client, buyer, packs, fake_stripe):
    CreditAccount.objects.filter(user=buyer).update(owed=250)
    html = client.get(CREDITS).content.decode()
    assert 'data-testid="credits-owed"' in html
    assert "250 credits are owed" in html


# --- end to end over real HTTP: the hosted page pays, the fake posts the webhook -------------


@pytest.mark.django_db(transaction=True)
def test_paying_on_the_hosted_page_grants_through_the_webhook(
    client, live_server, packs, fake_stripe
):
    user = UserFactory(username="payer")
    client.force_login(user)
    fake_stripe.webhook_url = live_server.url + "/webhooks/stripe/"

    checkout_url = client.post(BUY, {"pack": packs[0].pk})["Location"]
    with httpx.Client(trust_env=False, follow_redirects=False) as browser:
        assert browser.get(checkout_url).status_code == 200
        paid = browser.post(checkout_url, data={"card": "4242424242424242"})

    assert paid.status_code == 303
    purchase = Purchase.objects.get()
    assert urlsplit(paid.headers["Location"]).path == f"/credits/purchases/{purchase.pk}/thanks/"
    [(event, status)] = fake_stripe.delivered
    assert (event["type"], status) == ("checkout.session.completed", 200)
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.PAID
    assert balance(user) == 1000


# --- admin ------------------------------------------------------------------------------------


def test_admin_edits_packs_and_lists_purchases(client, staff_user, packs):
    client.force_login(staff_user)
    purchase = Purchase.objects.create(
        user=staff_user, pack=packs[0], credits=1000, amount_cents=1000, currency="usd"
    )

    assert client.get("/admin/accounts/creditpack/").status_code == 200
    added = client.post(
        "/admin/accounts/creditpack/add/",
        {"name": "Big", "credits": 20000, "price_cents": 15000, "currency": "eur",
         "active": "on", "sort_order": 3},
    )  # fmt: skip
    assert added.status_code == 302
    assert CreditPack.objects.filter(name="Big", currency="eur").exists()
    refused = client.post(
        "/admin/accounts/creditpack/add/",
        {"name": "Bad", "credits": 0, "price_cents": 100, "currency": "US", "sort_order": 0},
    )
    assert refused.status_code == 200
    assert not CreditPack.objects.filter(name="Bad").exists()

    assert client.get("/admin/accounts/purchase/").status_code == 200
    detail = client.get(f"/admin/accounts/purchase/{purchase.pk}/change/")
    assert detail.status_code == 200
    assert client.get("/admin/accounts/purchase/add/").status_code == 403


def test_admin_user_page_shows_owed_credits_and_purchases(client, staff_user, packs):
    client.force_login(staff_user)
    debtor = UserFactory(username="debtor")
    CreditAccount.objects.filter(user=debtor).update(owed=640)
    Purchase.objects.create(
        user=debtor, pack=packs[0], credits=1000, amount_cents=1000, currency="usd"
    )

    page = client.get(f"/admin/accounts/user/{debtor.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "640 credits owed" in html
    assert "Starter" in html


def test_the_studio_refuses_a_new_video_while_credits_are_owed(client, db):
    from tests.portal.conftest import FORM

    user = UserFactory(username="debtor", credits=5000)
    CreditAccount.objects.filter(user=user).update(owed=300)
    client.force_login(user)

    response = client.post("/", FORM)

    assert response.status_code == 200
    assert "300 credits that had already been spent" in response.content.decode()
    assert not LedgerEntry.objects.filter(account__user=user, kind="hold").exists()


def test_opening_checkouts_is_rate_limited_per_user_without_calling_stripe(
    client, buyer, packs, fake_stripe, settings
):
    """Each checkout is a Purchase row and a call to Stripe: a script (or a card tester)
    must not open them by the thousand."""
    settings.CHECKOUT_RATE = "2/hour"
    for _ in range(2):
        assert client.post(BUY, {"pack": packs[0].pk}).status_code == 303
    calls = len(fake_stripe.requests)

    refused = client.post(BUY, {"pack": packs[0].pk}, follow=True)

    assert refused.redirect_chain[-1][0] == CREDITS
    assert "Too many checkouts" in refused.content.decode()
    assert Purchase.objects.filter(user=buyer).count() == 2
    assert len(fake_stripe.requests) == calls
    other = UserFactory(username="other-buyer")
    client.force_login(other)
    assert client.post(BUY, {"pack": packs[0].pk}).status_code == 303  # per user
