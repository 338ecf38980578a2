"""Amounts in a currency's minor unit (as Stripe and `CreditPack.price_cents` hold them)
shown to people."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# Stripe's zero-decimal and three-decimal currencies
# (https://docs.stripe.com/currencies#zero-decimal); every other one has two decimals.
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


def decimals(currency: str) -> int:
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def format_amount(minor: int | Decimal, currency: str) -> str:
    """`1250, "usd"` -> "$12.50"; `500, "jpy"` -> "¥500"; `999, "chf"` -> "9.99 CHF"."""
    places = decimals(currency)
    value = (Decimal(minor) / (10**places)).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP
    )
    text = f"{value:,.{places}f}"
    symbol = SYMBOLS.get(currency.lower())
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def price_per_100_credits(*, price_minor: int, credits: int, currency: str) -> str:
    return format_amount(Decimal(price_minor) * 100 / credits, currency)
