"""Every admin page of ours renders for a superuser (changelists, add and change pages)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from accounts import staff, tokens, vouchers
from accounts.models import CreditPack, Purchase
from accounts.payments import fulfilment
from accounts.payments.stripe_gateway import CheckoutSession
from generations import quotes
from generations.models import BlockedTerm, PricingRule
from notifications.preferences import update_preferences
from tests.factories import REQUEST_BODY, GenerationFactory

OUR_APPS = {"accounts", "generations", "admin", "notifications"}


@pytest.fixture
def one_of_everything(superuser, paid_generation, user, django_capture_on_commit_callbacks):
    tokens.create_token(user=user, name="ci")
    [voucher] = vouchers.create_vouchers(amount=10, actor=superuser)
    vouchers.redeem(user=user, code=voucher.code)
    BlockedTerm.objects.create(term="gore", created_by=superuser)
    quotes.issue(user=user, params=REQUEST_BODY)
    staff.suspend_user(user=user, actor=superuser, reason="audit row")
    GenerationFactory(owner=user, moderation_state="hidden", moderation_reason="r")
    rule = PricingRule.objects.first()
    from generations import pricing_history

    rule.credits_per_second += 1
    pricing_history.save_rule(rule=rule, actor=superuser)
    pack = CreditPack.objects.create(name="Starter", credits=1000, price_cents=1000)
    purchase = Purchase.objects.create(
        user=user, pack=pack, credits=1000, amount_cents=1000, currency="usd"
    )
    paid = CheckoutSession(
        id="cs_admin_pages",
        url=None,
        status="complete",
        payment_status="paid",
        payment_intent="pi_admin_pages",
        metadata={"purchase_id": str(purchase.pk), "user_id": str(user.pk)},
    )
    with django_capture_on_commit_callbacks(execute=True):  # the receipt: a SentEmail row
        fulfilment.mark_paid(paid)
    update_preferences(
        user=user, video_emails=False, low_balance_emails=True, low_balance_threshold=None
    )


@pytest.mark.parametrize(
    "model",
    [m for m in admin.site._registry if m._meta.app_label in OUR_APPS],
    ids=lambda m: m._meta.label,
)
def test_admin_pages_render(admin_client_for, superuser, one_of_everything, model):
    opts = model._meta
    client = admin_client_for(superuser)
    prefix = f"admin:{opts.app_label}_{opts.model_name}"

    listing = client.get(reverse(f"{prefix}_changelist"))
    assert listing.status_code == 200
    add = client.get(reverse(f"{prefix}_add"))
    assert add.status_code in (200, 403)
    obj = model.objects.first()
    assert client.get(reverse(f"{prefix}_change", args=[obj.pk])).status_code == 200
    assert client.get(reverse(f"{prefix}_history", args=[obj.pk])).status_code == 200


def test_reason_page_and_credit_form_render(admin_client_for, superuser, user):
    client = admin_client_for(superuser)

    page = client.get(reverse("admin:accounts_user_object_action", args=[user.pk, "suspend_users"]))
    form = client.get(reverse("admin:accounts_user_credits", args=[user.pk]))

    assert page.status_code == 200 and "Suspend" in page.content.decode()
    assert form.status_code == 200 and 'name="form_key"' in form.content.decode()
    assert not LogEntry.objects.exists()


def test_object_action_for_an_unknown_action_or_object_is_refused(
    admin_client_for, moderator, user
):
    client = admin_client_for(moderator)
    generation = GenerationFactory(owner=user)

    assert (
        client.get(
            reverse("admin:generations_generation_object_action", args=[generation.pk, "refund"])
        ).status_code
        == 403
    )
    assert (
        client.get(
            reverse("admin:generations_generation_object_action", args=["nope", "hide"])
        ).status_code
        == 404
    )
