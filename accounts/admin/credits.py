"""Credits in the admin: accounts and the ledger, read-only (credits move only through
`accounts.ledger`, from the user's "Grant or deduct credits" page)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from accounts.admin.links import changelist_link
from accounts.models import CreditAccount, LedgerEntry
from veoproject.admin_readonly import ReadOnlyAdmin


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = ("user", "balance", "reserved", "available", "updated_at", "links")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__email")
    list_filter = ("updated_at",)
    ordering = ("-updated_at",)
    fields = ("user", "balance", "reserved", "available", "updated_at", "links")
    readonly_fields = fields

    @admin.display(description="")
    def links(self, account: CreditAccount) -> str:
        return format_html(
            '{} · <a href="{}">Grant or deduct</a>',
            changelist_link("accounts.LedgerEntry", "Ledger", account__id__exact=account.pk),
            reverse("admin:accounts_user_credits", args=[account.user_id]),
        )


class MadeByStaffFilter(admin.SimpleListFilter):
    title = "made by"
    parameter_name = "made_by"

    def lookups(self, request, model_admin):
        return [("staff", "A staff member"), ("system", "The system")]

    def queryset(self, request, queryset):
        if self.value() == "staff":
            return queryset.filter(actor__isnull=False)
        if self.value() == "system":
            return queryset.filter(actor__isnull=True)
        return queryset


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "account_user",
        "kind",
        "amount",
        "reserved_change",
        "balance_after",
        "reserved_after",
        "generation_link",
        "voucher",
        "actor",
        "reason",
    )
    list_filter = ("kind", MadeByStaffFilter, "created_at")
    list_select_related = ("account__user", "actor", "voucher")
    search_fields = (
        "account__user__username",
        "account__user__email",
        "reason",
        "=idempotency_key",
        "=voucher__code",
    )
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="user", ordering="account__user__username")
    def account_user(self, entry: LedgerEntry) -> str:
        return str(entry.account.user)

    @admin.display(description="generation")
    def generation_link(self, entry: LedgerEntry) -> str:
        if entry.generation_id is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:generations_generation_change", args=[entry.generation_id]),
            str(entry.generation_id)[:8],
        )
