"""Portal forms for accounts: allauth's forms in our look and words, and the API token form.
They parse input; allauth, `accounts.adapters` and `accounts.tokens` decide."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from allauth.account import forms as allauth_forms
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import limits, time_zones
from accounts.models import ApiToken, User
from veoproject import languages


class PlainLabels:
    """Labels without Django's trailing colon, like every other label on the site."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class DetectedTimeZone:
    """A hidden field that static/js/timezone.js fills with the browser's time zone (an
    IANA name); a missing or unknown name is dropped, never a form error."""

    fields: dict[str, forms.Field]
    cleaned_data: dict[str, Any]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A plain Field: no validators of its own (a CharField's refuse a NUL character).
        self.fields["time_zone"] = forms.Field(
            required=False, widget=forms.HiddenInput(attrs={"data-detect-time-zone": ""})
        )

    def clean_time_zone(self) -> str:
        return time_zones.detected_zone(self.cleaned_data.get("time_zone"))

    def remember_time_zone(self, user: User) -> None:
        time_zones.remember_detected_zone(user=user, name=self.cleaned_data.get("time_zone") or "")


class LoginForm(PlainLabels, DetectedTimeZone, allauth_forms.LoginForm):
    """allauth's login form (username or email address), except that a suspended user who
    gives the right password is told on the form that the account is suspended, and why.

    The suspension is revealed only with the right password, so the form says nothing
    about other accounts; allauth's backend does the same hashing work whether a login name
    exists or not.
    """

    error_messages = {
        "suspended": _("This account is suspended: %(reason)s"),
        "suspended_no_reason": _("This account is suspended. Contact support to learn more."),
    }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        login = self.fields["login"]
        login.label = _("Username or email")
        login.widget.attrs.update({"autocomplete": "username", "autofocus": True})
        login.widget.attrs.pop("placeholder", None)
        self.fields["password"].widget.attrs.pop("placeholder", None)
        self.fields["password"].help_text = ""  # the page links to the reset itself
        if "remember" in self.fields:
            self.fields["remember"].label = _("Keep me logged in")

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

    def login(self, request: HttpRequest, redirect_url: str | None = None) -> HttpResponse:
        """Log in, and keep the zone the browser detected if the user has none yet (the
        password was right: this is the account's owner)."""
        response = super().login(request, redirect_url)
        if self.user is not None:
            self.remember_time_zone(self.user)
        return response


class SignupForm(PlainLabels, DetectedTimeZone, allauth_forms.SignupForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # What the page promises (accounts.adapters grants it).
        self.signup_credits = settings.SIGNUP_CREDITS
        self.credits_after_confirmation = settings.ACCOUNT_EMAIL_VERIFICATION != "none"
        for field in self.fields.values():
            field.widget.attrs.pop("placeholder", None)
        self.fields["username"].help_text = _("Letters, digits and @ . + - _ only.")
        self.fields["username"].widget.attrs["autofocus"] = True
        self.fields["email"].help_text = _("We send a link to it: confirm it to start.")
        self.fields["password1"].help_text = _(
            "At least 8 characters, not only digits, not a common password."
        )
        if "password2" in self.fields:
            self.fields["password2"].label = _("Password again")

    def signup(self, request: HttpRequest, user: User) -> None:
        """allauth's hook after the new user is saved: keep the detected zone, and the
        language the page was in (emails sent by workers follow it; the settings page
        changes it)."""
        self.remember_time_zone(user)
        languages.remember_signup_language(user=user, request=request)


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
        ("", _("Never")),
        ("30", _("In 30 days")),
        ("90", _("In 90 days")),
        ("365", _("In a year")),
    ]

    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        label=_("Name"),
        help_text=_("Say where it will be used, e.g. “render farm” or “CMS plugin”."),
        widget=forms.TextInput(attrs={"placeholder": _("e.g. render farm")}),
    )
    expires_in_days = forms.TypedChoiceField(
        label=_("Expires"),
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
    )

    def expires_at(self):
        days = self.cleaned_data.get("expires_in_days")
        return timezone.now() + timedelta(days=days) if days else None


class AccountSettingsForm(PlainLabels, forms.ModelForm):
    """The account settings page: the zone times are shown in, and the portal's language
    (one of settings.LANGUAGES)."""

    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        required=False,
        help_text=_("Times on the site and in our emails are shown in it."),
    )
    language = forms.ChoiceField(label=_("Language"), required=False)

    class Meta:
        model = User
        fields = ["time_zone", "language"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        site_zone = timezone.get_default_timezone_name()
        zones: list[Any] = [("", _("The site's time zone (%(zone)s)") % {"zone": site_zone})]
        current = self.instance.time_zone
        if current and current not in time_zones.offered_zone_names():
            zones.append((current, current))  # an alias a browser reported ("Asia/Calcutta")
        zone_field = cast(forms.ChoiceField, self.fields["time_zone"])
        language_field = cast(forms.ChoiceField, self.fields["language"])
        zone_field.choices = [*zones, *time_zones.zone_choices()]
        language_field.choices = [
            ("", _("The one your browser asks for")),
            *settings.LANGUAGES,
        ]

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=False)
        if commit:
            user.save(update_fields=["time_zone", "language"])
        return user
