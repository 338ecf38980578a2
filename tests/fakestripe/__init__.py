"""A fake Stripe of the project's own: Checkout Sessions over HTTP on 127.0.0.1, driven
by the real `stripe` client, and webhook deliveries signed with Stripe's scheme.

    from tests.fakestripe.fixtures import fake_stripe, stripe_webhooks  # fixtures

    def test_paid(client, fake_stripe, stripe_webhooks):
        ...  # POST /credits/buy/ -> a session on the fake
        event = fake_stripe.complete(session_id)          # what Stripe would send
        stripe_webhooks.deliver(event)                    # signed, to /webhooks/stripe/
        stripe_webhooks.redeliver(event, 3); stripe_webhooks.wrong_secret(event)

Standalone (a browser test, a dev server): ``FakeStripe(webhook_url=...)`` then the
hosted page at the session's ``url`` pays and delivers ``checkout.session.completed``.
See README.md for what is played and where it comes from.
"""

from .server import FakeStripe
from .signing import signature_header
from .webhooks import StripeWebhooks

__all__ = ["FakeStripe", "StripeWebhooks", "signature_header"]
