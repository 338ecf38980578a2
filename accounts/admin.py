"""Admin for users, credits, API tokens, vouchers and the audit trail.

Declarative: balances, ledger entries, tokens and the audit trail are read-only for
everybody (superusers included); every change goes through a service (`accounts.staff`,
`accounts.vouchers`, `accounts.ledger`) from an action or a form that asks for a reason.
"""

from __future__ import annotations

import csv
import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from accounts import staff, vouchers
from accounts.admin_reasons import ObjectActionsMixin, reason_action
from accounts.models import ApiToken, CreditAccount, LedgerEntry, User, Voucher, VoucherRedemption
from veoproject.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from veoproject.exceptions import ApplicationError


def _changelist_link(model, label: str, **filters) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), label)


# --- Users ---------------------------------------------------------------------------------


class CreditCorrectionForm(forms.Form):
    GRANT, DEDUCT = "grant", "deduct"

    operation = forms.ChoiceField(
        choices=[(GRANT, "Grant credits"), (DEDUCT, "Deduct credits")],
        widget=forms.RadioSelect,
    )
    amount = forms.IntegerField(min_value=1, max_value=10_000_000)
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
    # Drawn when the form is shown: a double submit posts once (the ledger key).
    form_key = forms.UUIDField(widget=forms.HiddenInput)

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason

    @property
    def signed_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        return -amount if self.cleaned_data["operation"] == self.DEDUCT else amount


def _suspend(user: User, actor: User, reason: str) -> bool:
    return staff.suspend_user(user=user, actor=actor, reason=reason)


def _reactivate(user: User, actor: User, reason: str) -> bool:
    return staff.reactivate_user(user=user, actor=actor, reason=reason)


_suspend.__name__ = "suspend_users"
_reactivate.__name__ = "reactivate_users"


@admin.register(User)
class UserAdmin(ObjectActionsMixin, DjangoUserAdmin):
    change_form_template = "admin/object_actions_change_form.html"
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "balance",
        "reserved",
        "available",
        "date_joined",
    )
    list_filter = ("is_active", "is_staff", "is_superuser", "groups", "date_joined")
    list_select_related = ("credit_account",)
    search_fields = ("username", "email", "first_name", "last_name")
    readonly_fields = (
        "is_active",
        "suspension_reason",
        "credits",
        "activity",
        "last_login",
        "date_joined",
    )
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Credits and activity", {"fields": ("credits", "activity")}),
        ("Status", {"fields": ("is_active", "suspension_reason")}),
        (
            "Permissions",
            {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "usable_password", "password1", "password2"),
            },
        ),
    )
    object_actions = ("suspend_users", "reactivate_users")
    actions = [
        reason_action(
            description="Suspend (log out, stop API tokens)",
            permissions=["suspend"],
            perform=_suspend,
            confirm="Suspended users cannot log in and their API tokens stop working; "
            "their generations in flight finish and settle normally.",
        ),
        reason_action(
            description="Reactivate",
            permissions=["suspend"],
            perform=_reactivate,
        ),
    ]

    def object_action_applies(self, user: User, action_name: str) -> bool:
        return user.is_active == (action_name == "suspend_users")

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.suspend_user")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Users own ledger entries, which are kept forever: suspend instead.
        return False

    def _account(self, user: User) -> CreditAccount | None:
        return getattr(user, "credit_account", None)

    @admin.display(ordering="credit_account__balance")
    def balance(self, user: User) -> int | None:
        account = self._account(user)
        return account.balance if account else None

    @admin.display(ordering="credit_account__reserved")
    def reserved(self, user: User) -> int | None:
        account = self._account(user)
        return account.reserved if account else None

    @admin.display()
    def available(self, user: User) -> int | None:
        account = self._account(user)
        return account.available if account else None

    @admin.display(description="Credits")
    def credits(self, user: User) -> str:
        account = self._account(user)
        if account is None:
            return "-"
        return format_html(
            "{} balance, {} reserved, <strong>{} available</strong> &nbsp; "
            '<a class="button" href="{}">Grant or deduct credits</a>',
            account.balance,
            account.reserved,
            account.available,
            reverse("admin:accounts_user_credits", args=[user.pk]),
        )

    @admin.display(description="Activity")
    def activity(self, user: User) -> str:
        from generations.models import Generation

        return format_html(
            "{} · {} · {} · {}",
            _changelist_link(Generation, "Generations", owner__id__exact=user.pk),
            _changelist_link(LedgerEntry, "Ledger entries", account__user__id__exact=user.pk),
            _changelist_link(ApiToken, "API tokens", user__id__exact=user.pk),
            _changelist_link(LogEntry, "Staff actions on this user", object_id=user.pk),
        )

    def get_urls(self):
        return [
            path(
                "<int:user_id>/credits/",
                self.admin_site.admin_view(self.correct_credits_view),
                name="accounts_user_credits",
            ),
            *super().get_urls(),
        ]

    def correct_credits_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        """Grant or deduct credits with a required reason (accounts.correct_credits)."""
        if not request.user.has_perm("accounts.correct_credits"):
            raise PermissionDenied
        user = get_object_or_404(User.objects.select_related("credit_account"), pk=user_id)
        if request.method == "POST":
            form = CreditCorrectionForm(request.POST)
            if form.is_valid():
                try:
                    entry = staff.correct_credits(
                        user=user,
                        amount=form.signed_amount,
                        reason=form.cleaned_data["reason"],
                        actor=request.user,
                        idempotency_key=str(form.cleaned_data["form_key"]),
                    )
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    self.message_user(
                        request,
                        f"{entry.get_kind_display()} of {entry.amount:+d} credits posted "
                        f"for {user}; balance now {entry.balance_after}.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(
                        reverse("admin:accounts_user_change", args=[user.pk])
                    )
        else:
            form = CreditCorrectionForm(initial={"form_key": uuid.uuid4()})
        context = {
            **self.admin_site.each_context(request),
            "title": f"Grant or deduct credits: {user}",
            "opts": self.model._meta,
            "original": user,
            "account": user.credit_account,
            "form": form,
        }
        return TemplateResponse(request, "admin/accounts/user/credit_correction.html", context)


# --- Credits -------------------------------------------------------------------------------


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
            _changelist_link(LedgerEntry, "Ledger", account__id__exact=account.pk),
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


# --- API tokens ----------------------------------------------------------------------------


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are listed by their public prefix; the secret and its hash never show."""

    list_display = (
        "name",
        "user",
        "public_id",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = (TokenStateFilter, "created_at")
    list_select_related = ("user",)
    search_fields = ("name", "user__username", "user__email", "=prefix")
    fields = ("name", "user", "public_id", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    @admin.display(description="token")
    def public_id(self, token: ApiToken) -> str:
        return f"veo_{token.prefix}_…"

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_apitoken")

    @admin.action(permissions=["revoke"], description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = staff.revoke_tokens(tokens_to_revoke=list(queryset), actor=request.user)
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


# --- Vouchers ------------------------------------------------------------------------------


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
                    actor=request.user,
                )
            except ApplicationError as exc:
                for field, errors in exc.fields.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
                if not exc.fields:
                    form.add_error(None, exc.message)
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
        count = vouchers.expire_vouchers(vouchers=list(queryset), actor=request.user)
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
                    # A leading =, +, - or @ would be a formula in a spreadsheet.
                    ("'" + voucher.note) if voucher.note[:1] in "=+-@" else voucher.note,
                ]
            )
        return response


# --- Audit trail ---------------------------------------------------------------------------


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyAdmin):
    """Every staff action: who, what, when, and why (in the message)."""

    list_display = ("action_time", "user", "content_type", "object_link", "action_flag", "message")
    list_filter = ("action_flag", "content_type", "action_time")
    list_select_related = ("user", "content_type")
    search_fields = ("object_repr", "change_message", "user__username", "=object_id")
    date_hierarchy = "action_time"

    @admin.display(description="object")
    def object_link(self, entry: LogEntry) -> str:
        url = entry.get_admin_url()
        if not url:
            return entry.object_repr
        return format_html('<a href="{}">{}</a>', url, entry.object_repr)

    @admin.display(description="what and why")
    def message(self, entry: LogEntry) -> str:
        return entry.get_change_message()
