"""Credit packs (edited here), purchases (read-only: Stripe's webhook writes them) and, on
the user page, what a user owes after a refund or dispute and their purchases.

The user page (`accounts.admin.users.UserAdmin`) shows `PurchaseInline` and
`payments_summary` from here.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from accounts.admin.links import changelist_link
from accounts.models import CreditPack, Purchase, User
from accounts.payments.money import format_amount, price_per_100_credits
from veoproject.admin_readonly import ReadOnlyAdmin, ReadOnlyInline


@admin.register(CreditPack)
class CreditPackAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "credits",
        "price",
        "per_100_credits",
        "currency",
        "active",
        "sort_order",
    )
    list_editable = ("active", "sort_order")
    list_filter = ("active", "currency")
    search_fields = ("name",)
    fields = ("name", "credits", "price_cents", "currency", "active", "sort_order")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Purchases keep their pack: retire a pack by making it inactive.
        return False

    @admin.display(ordering="price_cents")
    def price(self, pack: CreditPack) -> str:
        return format_amount(pack.price_cents, pack.currency)

    @admin.display(description="Per 100 credits")
    def per_100_credits(self, pack: CreditPack) -> str:
        return price_per_100_credits(
            price_minor=pack.price_cents, credits=pack.credits, currency=pack.currency
        )


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "pack",
        "status",
        "credits",
        "amount",
        "credits_taken_back",
        "credits_owed",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "currency", "created_at")
    list_select_related = ("user", "pack")
    search_fields = (
        "user__username",
        "user__email",
        "stripe_session_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
    )
    date_hierarchy = "created_at"
    fields = (
        "user",
        "pack",
        "status",
        "failure_reason",
        "credits",
        "amount",
        "grant_entry",
        "refunded",
        "credits_taken_back",
        "credits_owed",
        "stripe_session_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "created_at",
        "paid_at",
        "updated_at",
    )

    @admin.display(ordering="amount_cents")
    def amount(self, purchase: Purchase) -> str:
        return format_amount(purchase.amount_cents, purchase.currency)

    @admin.display(description="Refunded / disputed")
    def refunded(self, purchase: Purchase) -> str:
        return (
            f"{format_amount(purchase.refunded_cents, purchase.currency)} refunded, "
            f"{format_amount(purchase.disputed_cents, purchase.currency)} disputed"
        )


class PurchaseInline(ReadOnlyInline):
    model = Purchase
    fk_name = "user"
    fields = ("pack", "status", "credits", "amount_cents", "currency", "credits_owed", "paid_at")
    ordering = ("-created_at",)
    show_change_link = True


def payments_summary(user: User, owed: int) -> str:
    """What the user owes after a refund or dispute, and a link to their purchases."""
    link = changelist_link("accounts.Purchase", "Purchases", user__id__exact=user.pk)
    if owed:
        return format_html(
            '<strong style="color: var(--error-fg, #ba2121)">{} credits owed</strong> '
            "after a refund or dispute: new generations are refused until a top-up or "
            "a grant pays them. · {}",
            owed,
            link,
        )
    return format_html("Nothing owed. · {}", link)
