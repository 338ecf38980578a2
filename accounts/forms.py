"""Portal forms for accounts: allauth's forms in our look and words, and the API token form.
They parse input; allauth, `accounts.adapters` and `accounts.tokens` decide."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from allauth.account import forms as allauth_forms
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import timezone

from accounts import limits
from accounts.models import ApiToken, User


class PlainLabels:
    """Labels without Django's trailing colon, like every other label on the site."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class LoginForm(PlainLabels, allauth_forms.LoginForm):
    """allauth's login form (username or email address), except that a suspended user who
    gives the right password is told on the form that the account is suspended, and why.

    The suspension is revealed only with the right password, so the form says nothing
    about other accounts; allauth's backend does the same hashing work whether a login name
    exists or not.
    """

    error_messages = {
        "suspended": "This account is suspended: %(reason)s",
        "suspended_no_reason": "This account is suspended. Contact support to learn more.",
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        login = self.fields["login"]
        login.label = "Username or email"
        login.widget.attrs.update({"autocomplete": "username", "autofocus": True})
        login.widget.attrs.pop("placeholder", None)
        self.fields["password"].widget.attrs.pop("placeholder", None)
        self.fields["password"].help_text = ""  # the page links to the reset itself
        if "remember" in self.fields:
            self.fields["remember"].label = "Keep me logged in"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # allauth lets a suspended user with the right password through, to its "inactive"
        # page; we say why, here.
        if self.user is not None and not self.user.is_active:
            raise self.suspension_error(self.user)
        return cleaned

    def suspension_error(self, user: User) -> ValidationError:
        reason = user.suspension_reason.strip()
        if reason:
            return ValidationError(
                self.error_messages["suspended"], code="suspended", params={"reason": reason}
            )
        return ValidationError(self.error_messages["suspended_no_reason"], code="suspended")


class SignupForm(PlainLabels, allauth_forms.SignupForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # What the page promises (accounts.adapters grants it).
        self.signup_credits = settings.SIGNUP_CREDITS
        self.credits_after_confirmation = settings.ACCOUNT_EMAIL_VERIFICATION != "none"
        for field in self.fields.values():
            field.widget.attrs.pop("placeholder", None)
        self.fields["username"].help_text = "Letters, digits and @ . + - _ only."
        self.fields["username"].widget.attrs["autofocus"] = True
        self.fields["email"].help_text = "We send a link to it: confirm it to start."
        self.fields[
            "password1"
        ].help_text = "At least 8 characters, not only digits, not a common password."
        if "password2" in self.fields:
            self.fields["password2"].label = "Password again"


class PasswordChangeForm(PlainLabels, allauth_forms.ChangePasswordForm):
    pass


class PasswordResetForm(PlainLabels, allauth_forms.ResetPasswordForm):
    """allauth's reset form, except that over the limits of `accounts.limits` no email goes
    out; the answer is the same as when one does, so the limit gives nothing away."""

    def save(self, request: HttpRequest, **kwargs) -> str:
        email = self.cleaned_data["email"]
        if not limits.password_reset_allowed(request, email):
            return email
        return super().save(request, **kwargs)


class PasswordResetKeyForm(PlainLabels, allauth_forms.ResetPasswordKeyForm):
    pass


class TokenCreateForm(PlainLabels, forms.Form):
    EXPIRY_CHOICES = [
        ("", "Never"),
        ("30", "In 30 days"),
        ("90", "In 90 days"),
        ("365", "In a year"),
    ]

    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="Say where it will be used, e.g. “render farm” or “CMS plugin”.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. render farm"}),
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires",
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
    )

    def expires_at(self):
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None
