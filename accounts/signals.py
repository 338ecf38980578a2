"""Every user has a credit account from the moment it exists (admin, createsuperuser,
signup alike). Signup credits follow allauth's two moments, a signup and an address
confirmed; the rule itself is `accounts.adapters.grant_signup_credits`."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed, user_signed_up
from django.contrib import messages
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.translation import gettext as _

from accounts import adapters
from accounts.models import CreditAccount, LedgerEntry, User
from veoproject import languages


@receiver(post_save, sender=User, dispatch_uid="accounts.create_credit_account")
def create_credit_account(sender, instance: User, created: bool, raw: bool = False, **kwargs):
    if created and not raw:
        CreditAccount.objects.get_or_create(user=instance)


@receiver(user_signed_up, dispatch_uid="accounts.signup_credits_at_signup")
def signup_credits_at_signup(sender, request: HttpRequest, user: User, **kwargs) -> None:
    _welcome(request, adapters.signup_credits_at_signup(user=user))


@receiver(email_confirmed, dispatch_uid="accounts.signup_credits_on_confirmation")
def signup_credits_on_confirmation(
    sender, request: HttpRequest, email_address: EmailAddress, **kwargs
) -> None:
    _welcome(request, adapters.signup_credits_on_confirmation(email_address=email_address))


def _welcome(request: HttpRequest | None, entry: LedgerEntry | None) -> None:
    if entry is not None and request is not None:
        messages.success(
            request,
            _("Welcome! You have %(credits)s credits to start with.")
            % {"credits": languages.grouped(entry.amount)},
        )
