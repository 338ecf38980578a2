"""pytest fixtures: ``fake_stripe`` (a started FakeStripe, with the project's Stripe
settings pointed at it) and ``stripe_webhooks`` (deliveries through the test client)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import FakeStripe
from .webhooks import StripeWebhooks


@pytest.fixture
def fake_stripe(settings) -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        settings.STRIPE_SECRET_KEY = fake.api_key
        settings.STRIPE_WEBHOOK_SECRET = fake.webhook_secret
        settings.STRIPE_API_BASE = fake.base_url
        yield fake


@pytest.fixture
def stripe_webhooks(client, fake_stripe: FakeStripe) -> StripeWebhooks:
    return StripeWebhooks(client, fake_stripe.webhook_secret)
