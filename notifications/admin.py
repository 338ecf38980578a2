from __future__ import annotations

from django.contrib import admin

from notifications.models import NotificationPreference, SentEmail
from veoproject.admin_readonly import ReadOnlyAdmin


@admin.register(SentEmail)
class SentEmailAdmin(ReadOnlyAdmin):
    """The sent-log: what went out to whom (history, never edited)."""

    list_display = ("created_at", "kind", "to", "user", "sent_at", "generation", "purchase_ref")
    list_filter = ("kind",)
    search_fields = ("to", "user__username", "user__email", "purchase_ref")
    list_select_related = ("user",)
    raw_id_fields = ("user", "generation", "ledger_entry")
    date_hierarchy = "created_at"


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(ReadOnlyAdmin):
    """Users' switches, changed by the users themselves (their settings page or an
    unsubscribe link)."""

    list_display = ("user", "video_emails", "low_balance_emails", "low_balance_threshold")
    list_filter = ("video_emails", "low_balance_emails")
    search_fields = ("user__username", "user__email")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
