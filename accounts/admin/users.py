"""The users' admin: who they are, their credits and activity; suspend, reactivate, and
grant or deduct credits with a reason (`accounts.staff`)."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts import staff
from accounts.admin.links import changelist_link
from accounts.admin.payments import PurchaseInline, payments_summary
from accounts.models import CreditAccount, User
from veoproject.admin_reasons import ObjectActionsMixin, ReasonForm, reason_action
from veoproject.audit import REASON_MAX_LENGTH
from veoproject.exceptions import ApplicationError
from veoproject.request_types import signed_in_user


class CreditCorrectionForm(ReasonForm):
    GRANT, DEDUCT = "grant", "deduct"

    operation = forms.ChoiceField(
        choices=[(GRANT, "Grant credits"), (DEDUCT, "Deduct credits")],
        widget=forms.RadioSelect,
    )
    amount = forms.IntegerField(min_value=1, max_value=10_000_000)
    # Checked by ReasonForm.clean_reason; no help text: the page says where it is recorded.
    reason = forms.CharField(max_length=REASON_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 3}))
    # Drawn when the form is shown: a double submit posts once (the ledger key).
    form_key = forms.UUIDField(widget=forms.HiddenInput)

    field_order = ["operation", "amount", "reason", "form_key"]

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
class UserAdmin(ObjectActionsMixin[User], DjangoUserAdmin):
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
        "payments",
        "last_login",
        "date_joined",
    )
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Preferences", {"fields": ("time_zone", "language")}),
        ("Credits and activity", {"fields": ("credits", "activity")}),
        ("Payments", {"fields": ("payments",)}),
        ("Status", {"fields": ("is_active", "suspension_reason")}),
        ("Fair share of fal's slots", {"fields": ("share_weight",)}),
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
    inlines = (PurchaseInline,)
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

    @admin.display(description="Payments")
    def payments(self, user: User) -> str:
        account = self._account(user)
        return payments_summary(user, account.owed if account else 0)

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
        return format_html(
            "{} · {} · {} · {}",
            changelist_link("generations.Generation", "Generations", owner__id__exact=user.pk),
            changelist_link(
                "accounts.LedgerEntry", "Ledger entries", account__user__id__exact=user.pk
            ),
            changelist_link("accounts.ApiToken", "API tokens", user__id__exact=user.pk),
            changelist_link("admin.LogEntry", "Staff actions on this user", object_id=user.pk),
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
                        actor=signed_in_user(request),
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
