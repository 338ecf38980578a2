"""Credit packs sold through Stripe Checkout.

- `stripe_gateway`: the only module that imports `stripe` (sessions, signed events).
- `checkout`: the packs on sale and the start of a purchase (a Checkout Session).
- `fulfilment`: what Stripe's events do to a purchase: the one top-up per session, and
  taking credits back after a refund or a dispute (through `accounts.ledger`).
- `events`: a verified webhook event to the fulfilment service it calls.
- `views`: buying, the pages Stripe sends the buyer back to, and `/webhooks/stripe/`.

Credits are granted only from Stripe's signed webhook, never from the buyer's return to
the success page.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def on_purchase_paid(purchase_id: int) -> None:
    """Called once a purchase's credits are granted, after the commit (from
    `fulfilment.mark_paid`). The receipt email hooks in here."""
    logger.info("event=purchase_paid purchase=%s", purchase_id)
    from notifications.services import purchase_paid  # the receipt, by email

    purchase_paid(purchase_id=purchase_id)
