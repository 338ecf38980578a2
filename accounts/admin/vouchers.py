"""Vouchers in the admin: create one or a batch, expire early, download codes as CSV."""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts import vouchers
from accounts.ledger_export import safe_cell
from accounts.models import Voucher, VoucherRedemption
from veoproject.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from veoproject.exceptions import ApplicationError
from veoproject.form_errors import add_service_errors
from veoproject.request_types import signed_in_user


class VoucherCreateForm(forms.Form):
    amount = forms.IntegerField(min_value=1, max_value=10_000_000, help_text="Credits.")
    count = forms.IntegerField(
        min_value=1,
        max_value=vouchers.MAX_BATCH,
        initial=1,
        help_text="How many codes to create (a batch gets one random code each).",
    )
    max_uses = forms.IntegerField(
        min_value=1,
        initial=1,
        help_text="How many different users may redeem each code.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional. Leave empty for no expiry.",
    )
    note = forms.CharField(max_length=200, required=False)
    code = forms.CharField(
        max_length=40,
        required=False,
        help_text="Optional, for a single voucher: a chosen code. Empty: a random one.",
    )


class VoucherRedemptionInline(ReadOnlyInline):
    model = VoucherRedemption
    fields = ("user", "created_at", "entry")


@admin.register(Voucher)
class VoucherAdmin(ReadOnlyAdmin):
    list_display = (
        "display_code",
        "amount",
        "uses",
        "max_uses",
        "state",
        "expires_at",
        "note",
        "created_by",
        "created_at",
    )
    list_filter = ("created_at", "expires_at")
    list_select_related = ("created_by",)
    search_fields = ("=code", "note")
    fields = (
        "display_code",
        "amount",
        "uses",
        "max_uses",
        "expires_at",
        "note",
        "created_by",
        "created_at",
    )
    readonly_fields = fields
    inlines = [VoucherRedemptionInline]
    actions = ["expire", "export_csv"]

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(
            request, queryset, vouchers.normalize_code(search_term) or search_term
        )

    @admin.display(description="code", ordering="code")
    def display_code(self, voucher: Voucher) -> str:
        return vouchers.format_code(voucher.code)

    @admin.display(description="state")
    def state(self, voucher: Voucher) -> str:
        if voucher.expires_at is not None and voucher.expires_at <= timezone.now():
            return "expired"
        if voucher.uses >= voucher.max_uses:
            return "used up"
        return "redeemable"

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.has_perm("accounts.add_voucher")

    def has_expire_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_voucher")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        """Create one voucher or a batch; the result page lists the new codes."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = VoucherCreateForm(request.POST or None)
        created: list[Voucher] = []
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                created = vouchers.create_vouchers(
                    amount=data["amount"],
                    count=data["count"],
                    max_uses=data["max_uses"],
                    expires_at=data["expires_at"],
                    note=data["note"],
                    code=data["code"],
                    actor=signed_in_user(request),
                )
            except ApplicationError as exc:
                add_service_errors(form, exc)
        context = {
            **self.admin_site.each_context(request),
            "title": "Create vouchers",
            "opts": self.model._meta,
            "form": form,
            "created": [(v, vouchers.format_code(v.code)) for v in created],
        }
        return TemplateResponse(request, "admin/accounts/voucher/create.html", context)

    @admin.action(permissions=["expire"], description="Expire selected vouchers now")
    def expire(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = vouchers.expire_vouchers(vouchers=list(queryset), actor=signed_in_user(request))
        self.message_user(request, f"Expired {count} voucher(s).", messages.SUCCESS)

    @admin.action(permissions=["view"], description="Download selected codes as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="vouchers.csv"'
        writer = csv.writer(response)
        writer.writerow(["code", "amount", "uses", "max_uses", "expires_at", "note"])
        for voucher in queryset:
            writer.writerow(
                [
                    vouchers.format_code(voucher.code),
                    voucher.amount,
                    voucher.uses,
                    voucher.max_uses,
                    voucher.expires_at.isoformat() if voucher.expires_at else "",
                    safe_cell(voucher.note),
                ]
            )
        return response
