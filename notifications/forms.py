"""The email settings form: it parses; `notifications.preferences` decides."""

from __future__ import annotations

from django import forms

from notifications.preferences import THRESHOLD_MAX


class NotificationSettingsForm(forms.Form):
    video_emails = forms.BooleanField(
        required=False,
        label="Email me when a video is ready or has failed",
        label_suffix="",
    )
    low_balance_emails = forms.BooleanField(
        required=False,
        label="Email me when my credits run low",
        label_suffix="",
    )
    low_balance_threshold = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=THRESHOLD_MAX,
        label="Low-balance threshold (credits)",
        label_suffix="",
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "step": 1}),
    )

    def __init__(self, *args, default_threshold: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["low_balance_threshold"]
        field.help_text = (
            "One email when your available credits fall below this, and another only after "
            f"you add credits. Empty: the price of one default video ({default_threshold:,} "
            "credits now)."
        )
        field.widget.attrs["placeholder"] = str(default_threshold)
