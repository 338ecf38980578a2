"""The portal page for redeeming a credit voucher (/credits/redeem/)."""

from __future__ import annotations

import math
from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts import vouchers
from veoproject import languages
from veoproject.request_types import AuthenticatedHttpRequest
from veoproject.throttles import VoucherRedeemThrottle


class VoucherRedeemForm(forms.Form):
    code = forms.CharField(
        max_length=64,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "placeholder": "XXXX-XXXX-XXXX",
            }
        ),
    )


@login_required
@require_http_methods(["GET", "POST"])
def voucher_redeem(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = VoucherRedeemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The same attempt budget as the API, so the page cannot be used to guess codes.
        # A DRF throttle on a Django request: UserRateThrottle reads only `user` and META,
        # which both have, and never the view.
        throttle = VoucherRedeemThrottle()
        if not throttle.allow_request(cast(Request, request), cast(APIView, None)):
            wait = math.ceil(throttle.wait() or 60)
            minutes = max(1, math.ceil(wait / 60))
            form.add_error(
                "code",
                ngettext(
                    "Too many attempts. Try again in %(minutes)d minute.",
                    "Too many attempts. Try again in %(minutes)d minutes.",
                    minutes,
                )
                % {"minutes": minutes},
            )
        else:
            try:
                redemption = vouchers.redeem(user=request.user, code=form.cleaned_data["code"])
            except vouchers.VoucherError as exc:
                form.add_error("code", exc.message)
            else:
                messages.success(
                    request,
                    _("%(added)s credits added. You now have %(available)s credits available.")
                    % {
                        "added": languages.grouped(redemption.entry.amount),
                        "available": languages.grouped(redemption.credits.available),
                    },
                )
                return redirect("credits")
    return render(request, "accounts/voucher_redeem.html", {"form": form})
