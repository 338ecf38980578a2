"""A newcomer pays (issue 13's "done when"): sign up, confirm the address from the email,
buy a credit pack on (the fake) Stripe's hosted page, generate a video, get the "ready"
email, and find the receipt and the ledger on the credits page. Credits arrive only
through Stripe's signed webhook to the live server; a real qcluster runs the generation
and sends the emails (to files, read back here)."""

from __future__ import annotations

import email
import re
from email.message import Message
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from accounts.models import CreditPack, LedgerEntry, Purchase, User
from generations.models import Generation
from tests.browser.conftest import needs_chromium
from tests.browser.test_portal_flow import SAMPLE_IMAGE, header_credits, watch_card_until_final
from tests.fakestripe.server import FakeStripe

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]


def emails_in(folder: Path) -> list[Message]:
    return [email.message_from_bytes(path.read_bytes()) for path in sorted(folder.glob("*"))]


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    return ""


def test_newcomer_signs_up_buys_credits_generates_and_gets_the_email(
    page: Page, live_server, start_worker, settings, screenshot, tmp_path
):
    settings.SIGNUP_CREDITS = 0
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.FAL_KEY = ""
    settings.FAL_SIMULATED = True
    base = live_server.url
    CreditPack.objects.create(name="Starter", credits=1000, price_cents=1000, currency="usd")
    outbox = tmp_path / "worker-mail"
    start_worker(
        FAL_SIMULATED_QUEUE_SECONDS="1",
        FAL_SIMULATED_RUN_SECONDS="2",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(outbox),
        PUBLIC_BASE_URL=base,
    )
    stripe = FakeStripe(webhook_url=f"{base}/webhooks/stripe/").start()
    settings.STRIPE_SECRET_KEY = stripe.api_key
    settings.STRIPE_WEBHOOK_SECRET = stripe.webhook_secret
    settings.STRIPE_API_BASE = stripe.base_url
    try:
        # Sign up and confirm: no free credits on this site.
        page.goto(f"{base}/signup/")
        page.get_by_label("Username").fill("newton")
        page.get_by_label("Email").fill("newton@example.com")
        page.get_by_label("Password", exact=True).fill("an apple falls slowly 7")
        page.get_by_label("Password again").fill("an apple falls slowly 7")
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_text("newton@example.com")).to_be_visible()
        link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body)
        assert link, mail.outbox[-1].body
        page.goto(link.group(0))
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_url(f"{base}/")
        assert header_credits(page) == (0, 0, 0)

        # Buy the pack: our page -> Stripe's hosted page -> back to the thank-you page.
        page.goto(f"{base}/credits/")
        expect(page.get_by_test_id("packs")).to_contain_text("Starter")
        screenshot("13-credits-packs")
        page.get_by_role("button", name="Buy Starter").click()
        page.wait_for_url(re.compile(re.escape(stripe.base_url) + r"/c/pay/cs_"))
        expect(page.get_by_role("heading", name="Pay 10.00 USD")).to_be_visible()
        page.get_by_role("button", name="Pay").click()
        page.wait_for_url(re.compile(re.escape(base) + r"/credits/purchases/\d+/thanks/"))
        expect(page.get_by_test_id("purchase-status")).to_be_visible()
        [(event, answer)] = stripe.delivered
        assert (event["type"], answer) == ("checkout.session.completed", 200)
        user = User.objects.get(username="newton")
        purchase = Purchase.objects.get(user=user)
        assert purchase.is_paid and purchase.credits == 1000
        page.goto(f"{base}/")
        assert header_credits(page) == (1000, 0, 1000)

        # Generate: the card finishes by itself; the worker emails that it is ready.
        page.locator("#id_image").set_input_files(str(SAMPLE_IMAGE))
        page.get_by_label("Prompt").fill("A lighthouse at dusk, waves rolling in")
        price = int(page.get_by_test_id("price-credits").inner_text().replace(",", ""))
        page.get_by_role("button", name="Generate video").click()
        page.wait_for_url(f"{base}/videos/")
        assert watch_card_until_final(page)[-1] == "succeeded"
        generation = Generation.objects.get(owner=user)
        assert generation.cost_credits == price

        def sent() -> dict[str, Message]:
            return {m["Subject"]: m for m in emails_in(outbox)} if outbox.exists() else {}

        for _ in range(100):  # the emails are tasks of their own, after the settle
            subjects = " | ".join(sent())
            if "ready" in subjects.lower() and "receipt" in subjects.lower():
                break
            page.wait_for_timeout(200)
        by_subject = sent()
        ready = [m for s, m in by_subject.items() if "ready" in s.lower()]
        receipts = [m for s, m in by_subject.items() if "receipt" in s.lower()]
        assert len(ready) == 1 and len(receipts) == 1, list(by_subject)
        assert ready[0]["To"] == "newton@example.com"
        assert str(generation.pk) in text_of(ready[0])
        assert "1,000" in text_of(receipts[0]) or "1000" in text_of(receipts[0])

        # The credits page: the receipt and the ledger (top-up, then the capture).
        page.goto(f"{base}/credits/")
        expect(page.get_by_test_id("receipts")).to_contain_text("Starter")
        expect(page.get_by_test_id("receipts")).to_contain_text(f"#{purchase.pk}")
        ledger = page.get_by_test_id("ledger")
        expect(ledger).to_contain_text("1,000")
        expect(ledger).to_contain_text(f"{price:,}")
        screenshot("14-credits-receipt-and-ledger")
        kinds = list(
            LedgerEntry.objects.filter(account__user=user)
            .order_by("pk")
            .values_list("kind", flat=True)
        )
        assert kinds == ["topup", "hold", "capture"], kinds
    finally:
        stripe.stop()
