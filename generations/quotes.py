"""Quotes that bind: a price promised to one user for one model and its options.

- `issue`: prices the options of a request (the one request definition,
  `generations.requests.priced_options`) and stores the quote for QUOTE_TTL_SECONDS, with
  its line items. The API's quote and the studio's price box call it.
- `price_to_charge`: what a create pays; `services.accept` calls it inside its one
  transaction, and the hold takes what it returns.
- `purge_expired`: the schedule `generations.purge_quotes`.

The rules, decided here once:
- A create carrying `quote_id` pays exactly the quote's `cost_credits`, whatever the
  prices are now. A quote pays for one generation: it is claimed by a conditional UPDATE
  in accept's transaction, so of two creates with one quote exactly one gets it, and an
  accept that fails afterwards (not enough credits, the in-flight cap) rolls the claim
  back with it: the quote is still good.
- 409 `quote_mismatch`: another model or other priced options (`BINDING_OPTIONS`), another
  user's quote, or an id that names no quote: those last two answer alike, so nobody
  learns whether another user's quote exists. A `quote_id` that is not a UUID is a 400.
- 409 `quote_expired`: past its `expires_at`, or already used.
- Without a quote, `max_cost_credits` refuses a price above it with 409 `price_changed`.
  Sending both is a 400: a quote already fixes the price.
- Every refusal says the current price (`cost_credits`, `price_breakdown`), so a client
  or the studio can show it and ask again.
- Unused expired quotes are kept PURGE_AFTER past their expiry, so a late create still
  hears `quote_expired` rather than `quote_mismatch`. Used ones are kept for good, linked
  from the generation they paid (`Generation.quote`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import status

from accounts.models import User
from generations import pricing
from generations.models import Quote
from generations.requests import GenerationParams, priced_options
from veoproject.exceptions import ApplicationError, ValidationFailed

# What a quote fits: the model (the price's endpoint) and the options that set the price
# (and the frame's size). The aspect ratio, prompt, images, seed and callback URL change
# no price: a create may differ in them (say, a studio form sent without JavaScript after
# switching to portrait, whose price box could not re-quote).
BINDING_OPTIONS = ("duration", "resolution", "generate_audio")
PURGE_AFTER = timedelta(hours=1)


class QuoteRefused(ApplicationError):
    """A create whose agreed price cannot be honoured; nothing is held."""

    http_status = status.HTTP_409_CONFLICT

    def __init__(self, message: str, *, current: pricing.Quote) -> None:
        super().__init__(
            message,
            extra={"cost_credits": current.credits, "price_breakdown": current.price_breakdown},
        )
        self.current = current


class QuoteExpired(QuoteRefused):
    code = "quote_expired"


class QuoteMismatch(QuoteRefused):
    code = "quote_mismatch"


class PriceChanged(QuoteRefused):
    code = "price_changed"


@dataclass(frozen=True)
class IssuedQuote:
    record: Quote
    price: pricing.Quote


@dataclass(frozen=True)
class Charge:
    """What a create pays and its line items."""

    credits: int
    price_breakdown: list[dict]
    quote_id: UUID | None = None


def binding_options(values: Mapping[str, Any] | GenerationParams) -> dict[str, Any]:
    """The options a quote must match, from checked options or a checked create."""
    if isinstance(values, GenerationParams):
        return {name: getattr(values, name) for name in BINDING_OPTIONS}
    return {name: values.get(name) for name in BINDING_OPTIONS}


def issue(*, user: User, params: Mapping[str, Any]) -> IssuedQuote:
    """Price the options in `params` and store the quote for QUOTE_TTL_SECONDS.
    ValidationFailed or PricingError as a quote request would raise them."""
    values, price = priced_options(params=params)
    record = Quote.objects.create(
        owner=user,
        model=price.endpoint,
        options=binding_options(values),
        cost_credits=price.credits,
        price_breakdown=price.price_breakdown,
        expires_at=timezone.now() + timedelta(seconds=settings.QUOTE_TTL_SECONDS),
    )
    return IssuedQuote(record=record, price=price)


def price_to_charge(
    *,
    user: User,
    current: pricing.Quote,
    options: GenerationParams,
    quote_id: UUID | None = None,
    max_cost_credits: int | None = None,
) -> Charge:
    """What a create of `options` (its checked request) pays: the price of quote `quote_id`
    (claimed for good), else `current` (the price now) if not above `max_cost_credits`.
    Call it inside accept's transaction, so a claim goes back if the accept does not
    happen. Raises QuoteExpired, QuoteMismatch, PriceChanged or ValidationFailed."""
    if quote_id is not None and max_cost_credits is not None:
        raise ValidationFailed(
            _("Send quote_id or max_cost_credits, not both."),
            fields={"max_cost_credits": [_("A quote already fixes the price: leave this out.")]},
        )
    if quote_id is not None:
        quote = _claim(user=user, quote_id=quote_id, current=current, options=options)
        return Charge(
            credits=quote.cost_credits, price_breakdown=quote.price_breakdown, quote_id=quote.pk
        )
    if max_cost_credits is not None and current.credits > max_cost_credits:
        raise PriceChanged(
            _(
                "The price is now %(credits)s credits, more than the %(most)s you agreed to; "
                "nothing was held."
            )
            % {"credits": current.credits, "most": max_cost_credits},
            current=current,
        )
    return Charge(credits=current.credits, price_breakdown=current.price_breakdown)


def _claim(
    *, user: User, quote_id: UUID, current: pricing.Quote, options: GenerationParams
) -> Quote:
    now = timezone.now()
    quote = Quote.objects.filter(pk=quote_id, owner=user).first()
    if quote is None:  # unknown, or somebody else's: the same answer
        raise QuoteMismatch(
            _(
                "This quote is not one of yours. The price now is %(credits)s credits; ask "
                "for a new quote."
            )
            % {"credits": current.credits},
            current=current,
        )
    if quote.model != current.endpoint or quote.options != binding_options(options):
        raise QuoteMismatch(
            _(
                "This quote was for another model or other options. The price of these is "
                "%(credits)s credits; ask for a quote of them."
            )
            % {"credits": current.credits},
            current=current,
        )
    state = quote.state_at(now)
    if state == Quote.State.USED:
        raise QuoteExpired(_used_message(current), current=current)
    if state == Quote.State.EXPIRED:
        raise QuoteExpired(
            _(
                "This quote expired at %(expired)s. The price now is %(credits)s credits; ask "
                "for a new quote."
            )
            % {"expired": _utc(quote.expires_at), "credits": current.credits},
            current=current,
        )
    # The claim: whoever updates the row first has it (a concurrent accept waits for our
    # commit on PostgreSQL, then finds it used; SQLite serialises writers).
    claimed = Quote.objects.in_state(Quote.State.OPEN, now).filter(pk=quote.pk).update(used_at=now)
    if not claimed:
        raise QuoteExpired(_used_message(current), current=current)
    return quote


def _used_message(current: pricing.Quote) -> str:
    return _(
        "This quote already paid for a video; each quote pays for one. The price now is "
        "%(credits)s credits; ask for a new quote."
    ) % {"credits": current.credits}


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def purge_expired(*, now: datetime | None = None) -> int:
    """Delete the unused quotes expired more than PURGE_AFTER ago; returns how many.
    Used quotes are kept for good: each is the evidence of what its generation
    (`Generation.quote`) was promised, and there are no more of them than generations."""
    moment = (now or timezone.now()) - PURGE_AFTER
    deleted, _ = Quote.objects.in_state(Quote.State.EXPIRED, moment).delete()
    return deleted
