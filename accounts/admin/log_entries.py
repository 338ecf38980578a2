"""The audit trail in the admin (`veoproject.audit` writes it): Django's LogEntry,
read-only."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.utils.html import format_html

from veoproject.admin_readonly import ReadOnlyAdmin


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
