from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import CreditPack


class BuyPackForm(forms.Form):
    pack = forms.ModelChoiceField(
        queryset=CreditPack.objects.filter(active=True),
        error_messages={"invalid_choice": _("This pack is not on sale.")},
    )
