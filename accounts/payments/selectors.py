"""What the credits page shows about payments: the packs on sale and the receipts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from accounts.models import CreditPack, Purchase, User
from accounts.payments import stripe_gateway
from accounts.payments.money import format_amount, price_per_100_credits


@dataclass(frozen=True)
class PackOffer:
    id: int
    name: str
    credits: int
    price: str
    per_100_credits: str


def payments_enabled() -> bool:
    return stripe_gateway.enabled()


def offered_packs() -> list[PackOffer]:
    """The active packs in `sort_order`; none when Stripe is not set up."""
    if not stripe_gateway.enabled():
        return []
    return [
        PackOffer(
            id=pack.pk,
            name=pack.name,
            credits=pack.credits,
            price=format_amount(pack.price_cents, pack.currency),
            per_100_credits=price_per_100_credits(
                price_minor=pack.price_cents, credits=pack.credits, currency=pack.currency
            ),
        )
        for pack in CreditPack.objects.filter(active=True)
    ]


@dataclass(frozen=True)
class Receipt:
    id: int
    created_at: datetime
    paid_at: datetime | None
    pack_name: str
    credits: int
    amount: str
    status: str
    is_paid: bool
    credits_reversed: int
    refunded: str | None


def receipts(*, user: User, limit: int = 20) -> list[Receipt]:
    """The user's purchases, newest first, except sessions never paid for."""
    rows = (
        Purchase.objects.filter(user=user)
        .exclude(status__in=[Purchase.Status.PENDING, Purchase.Status.EXPIRED])
        .select_related("pack")[:limit]
    )
    return [
        Receipt(
            id=row.pk,
            created_at=row.created_at,
            paid_at=row.paid_at,
            pack_name=row.pack.name,
            credits=row.credits,
            amount=format_amount(row.amount_cents, row.currency),
            status=row.get_status_display(),
            is_paid=row.is_paid,
            credits_reversed=row.credits_reversed,
            refunded=(
                format_amount(row.refunded_cents + row.disputed_cents, row.currency)
                if row.refunded_cents or row.disputed_cents
                else None
            ),
        )
        for row in rows
    ]
