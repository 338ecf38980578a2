"""API tokens in the admin: listed by their public prefix, revoked by staff."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts import staff
from accounts.models import ApiToken
from veoproject.admin_readonly import ReadOnlyAdmin
from veoproject.request_types import signed_in_user


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
        count = staff.revoke_tokens(tokens_to_revoke=list(queryset), actor=signed_in_user(request))
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
