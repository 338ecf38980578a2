from __future__ import annotations

from django import forms

from accounts.models import CreditPack


class BuyPackForm(forms.Form):
    pack = forms.ModelChoiceField(
        queryset=CreditPack.objects.filter(active=True),
        error_messages={"invalid_choice": "This pack is not on sale."},
    )
