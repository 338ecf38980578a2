"""The email settings form: it parses; `notifications.preferences` decides."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from notifications.preferences import THRESHOLD_MAX
from veoproject import languages


class NotificationSettingsForm(forms.Form):
    video_emails = forms.BooleanField(
        required=False,
        label=gettext_lazy("Email me when a video is ready or has failed"),
        label_suffix="",
    )
    low_balance_emails = forms.BooleanField(
        required=False,
        label=gettext_lazy("Email me when my credits run low"),
        label_suffix="",
    )
    low_balance_threshold = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=THRESHOLD_MAX,
        label=gettext_lazy("Low-balance threshold (credits)"),
        label_suffix="",
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "step": 1}),
    )

    def __init__(self, *args, default_threshold: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["low_balance_threshold"]
        field.help_text = _(
            "One email when your available credits fall below this, and another only after "
            "you add credits. Empty: the price of one default video (%(credits)s credits now)."
        ) % {"credits": languages.grouped(default_threshold)}
        field.widget.attrs["placeholder"] = str(default_threshold)
