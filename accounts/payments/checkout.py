"""The start of a purchase: a Stripe Checkout Session for a pack."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from accounts import limits
from accounts.models import CreditPack, Purchase, User
from accounts.payments import stripe_gateway
from veoproject import languages
from veoproject.exceptions import LimitExceeded, ValidationFailed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckoutStarted:
    purchase: Purchase
    url: str


@dataclass(frozen=True)
class ReturnUrls:
    success: str
    cancel: str


def start_checkout(
    *, user: User, pack: CreditPack, return_urls: Callable[[int], ReturnUrls]
) -> CheckoutStarted:
    """Record a purchase of `pack` (its credits and price copied now) and open a Stripe
    Checkout Session for it; the buyer pays on Stripe's `url`, then comes back to
    `return_urls(purchase id)`. Nothing is granted here: the credits come
    with Stripe's webhook (`fulfilment.mark_paid`)."""
    if not stripe_gateway.enabled():
        raise stripe_gateway.PaymentsDisabled()
    if not pack.active:
        raise ValidationFailed(
            _("This pack is no longer on sale."), fields={"pack": [_("Not on sale.")]}
        )
    if not limits.hit("checkout", f"user:{user.pk}", settings.CHECKOUT_RATE):
        logger.warning("event=checkout_limited user=%s", user.pk)
        raise LimitExceeded(
            _("Too many checkouts opened in a short time. Please wait a while and try again."),
            code="checkout_limited",
            retry_after=3600,
        )
    purchase = Purchase.objects.create(
        user=user,
        pack=pack,
        credits=pack.credits,
        amount_cents=pack.price_cents,
        currency=pack.currency,
    )
    urls = return_urls(purchase.pk)
    try:
        # No transaction around the call: the purchase row stays, failed, if Stripe fails.
        session = stripe_gateway.create_checkout_session(
            purchase_id=purchase.pk,
            user_id=user.pk,
            pack_id=pack.pk,
            product_name=_("%(pack)s: %(credits)s credits")
            % {"pack": pack.name, "credits": languages.grouped(pack.credits)},
            amount_cents=purchase.amount_cents,
            currency=purchase.currency,
            customer_email=user.email,
            success_url=urls.success,
            cancel_url=urls.cancel,
        )
    except stripe_gateway.PaymentProviderError as exc:
        Purchase.objects.filter(pk=purchase.pk, status=Purchase.Status.PENDING).update(
            status=Purchase.Status.FAILED, failure_reason=exc.message
        )
        raise
    if not session.url:
        Purchase.objects.filter(pk=purchase.pk, status=Purchase.Status.PENDING).update(
            status=Purchase.Status.FAILED, failure_reason="Stripe gave no checkout page."
        )
        raise stripe_gateway.PaymentProviderError()
    with transaction.atomic():
        # A webhook that beat us here has already recorded the session id (by metadata).
        Purchase.objects.filter(pk=purchase.pk, stripe_session_id__isnull=True).update(
            stripe_session_id=session.id
        )
    purchase.refresh_from_db()
    logger.info(
        "event=checkout_started purchase=%s user=%s pack=%s session=%s",
        purchase.pk,
        user.pk,
        pack.pk,
        session.id,
    )
    return CheckoutStarted(purchase=purchase, url=session.url)
