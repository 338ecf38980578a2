"""Buying a pack, the pages Stripe sends the buyer back to, and Stripe's webhook."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Purchase
from accounts.payments import checkout, events, stripe_gateway
from accounts.payments.forms import BuyPackForm
from accounts.payments.money import format_amount
from veoproject import site_urls
from veoproject.exceptions import ApplicationError, error_body
from veoproject.request_types import AuthenticatedHttpRequest

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 512 * 1024


@login_required
@require_POST
def purchase_start(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Open a Stripe Checkout Session for the chosen pack and send the buyer there."""
    form = BuyPackForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("This pack is not on sale."))
        return redirect("credits")

    def return_urls(purchase_id: int) -> checkout.ReturnUrls:
        return checkout.ReturnUrls(
            success=site_urls.for_client(reverse("purchase-success", args=[purchase_id]), request),
            cancel=site_urls.for_client(reverse("purchase-cancel", args=[purchase_id]), request),
        )

    try:
        started = checkout.start_checkout(
            user=request.user,
            pack=form.cleaned_data["pack"],
            return_urls=return_urls,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("credits")
    return HttpResponseRedirect(started.url, status=303)


def _own_purchase(request: AuthenticatedHttpRequest, pk: int) -> Purchase:
    return get_object_or_404(Purchase.objects.select_related("pack"), pk=pk, user=request.user)


def _receipt(purchase: Purchase) -> dict:
    return {
        "purchase": purchase,
        "amount": format_amount(purchase.amount_cents, purchase.currency),
    }


@login_required
@require_GET
@never_cache
def purchase_success(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """Where Stripe sends the buyer after paying. It only shows the purchase: the credits
    come with Stripe's webhook, never from this page."""
    purchase = _own_purchase(request, pk)
    return render(request, "accounts/purchase_success.html", _receipt(purchase))


@login_required
@require_GET
@never_cache
def purchase_cancel(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    purchase = _own_purchase(request, pk)
    return render(request, "accounts/purchase_cancel.html", _receipt(purchase))


@csrf_exempt  # Stripe signs its deliveries; there is no session here
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Stripe's webhook: verified (`stripe_gateway.verified_event`), then applied through
    the idempotent fulfilment services. 400 refuses a delivery that is not a genuine,
    readable event (nothing moves); 503 asks Stripe to redeliver when we could not ask
    Stripe about a charge; any other answer is 200, also for events we ignore."""
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit():
        return JsonResponse(error_body("invalid_webhook", "Bad Content-Length."), status=400)
    if int(length) > MAX_WEBHOOK_BYTES:
        return JsonResponse(error_body("too_large", "The webhook body is too large."), status=413)
    try:
        event = stripe_gateway.verified_event(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
        outcome = events.handle_event(event)
    except stripe_gateway.EventRejected as exc:
        logger.warning("event=stripe_webhook_rejected reason=%s", exc)
        return JsonResponse(
            error_body("invalid_webhook", "The webhook is not a valid signed Stripe event."),
            status=400,
        )
    except (stripe_gateway.PaymentProviderError, stripe_gateway.PaymentsDisabled) as exc:
        # We could not ask Stripe (down, or no API key): Stripe redelivers later.
        logger.error("event=stripe_webhook_deferred reason=%s", exc.code)
        return JsonResponse(error_body(exc.code, exc.message), status=503)
    logger.info(
        "event=stripe_webhook type=%s id=%s outcome=%s",
        event["type"],
        event.get("id"),
        outcome,
    )
    return JsonResponse({"received": True, "outcome": outcome})
