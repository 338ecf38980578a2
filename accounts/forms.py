"""Portal forms for accounts. They parse input; `accounts.services` and
`accounts.tokens` decide."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import (
    AuthenticationForm,
    PasswordChangeForm,
    PasswordResetForm,
    SetPasswordForm,
)
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ApiToken, User


class PlainLabels:
    """Labels without Django's trailing colon, like every other label on the site."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class SignupForm(PlainLabels, forms.Form):
    username = forms.CharField(
        max_length=150,
        help_text="Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password = forms.CharField(
        strip=False,
        help_text="At least 8 characters, not only digits, not a common password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_confirm = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what Form.clean returns (typed as possibly None)
        password, confirm = cleaned.get("password"), cleaned.get("password_confirm")
        if password and confirm and password != confirm:
            self.add_error("password_confirm", "The two passwords differ.")
        return cleaned


class LoginForm(PlainLabels, AuthenticationForm):
    """Django's login form, except that a suspended user who gives the right password is
    told that the account is suspended, and why.

    The suspension is revealed only with the right password, so the form says nothing
    about other accounts. Every failed attempt costs the same number of password hashes
    (the backend's and ours), so timing does not tell whether a username exists either.
    """

    error_messages = {
        **AuthenticationForm.error_messages,
        "suspended": "This account is suspended: %(reason)s",
        "suspended_no_reason": "This account is suspended. Contact support to learn more.",
    }

    def clean(self) -> dict:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            self.user_cache = authenticate(self.request, username=username, password=password)
            if self.user_cache is None:
                suspended = self._suspended_user(username, password)
                if suspended is not None:
                    raise self.suspension_error(suspended)
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data

    @staticmethod
    def _suspended_user(username: str, password: str) -> User | None:
        try:
            user = User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            User().set_password(password)  # the same hashing work as for a real user
            return None
        if user.check_password(password) and not user.is_active:
            return user
        return None

    def confirm_login_allowed(self, user: User) -> None:
        if not user.is_active:
            raise self.suspension_error(user)

    def suspension_error(self, user: User) -> ValidationError:
        reason = user.suspension_reason.strip()
        if reason:
            return ValidationError(
                self.error_messages["suspended"], code="suspended", params={"reason": reason}
            )
        return ValidationError(self.error_messages["suspended_no_reason"], code="suspended")


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


class PortalPasswordChangeForm(PlainLabels, PasswordChangeForm):
    pass


class PortalPasswordResetForm(PlainLabels, PasswordResetForm):
    pass


class PortalSetPasswordForm(PlainLabels, SetPasswordForm):
    pass
