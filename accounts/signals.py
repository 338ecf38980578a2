"""Every user has a credit account from the moment it exists (admin, createsuperuser,
signup alike). No credits move here: signup credits are granted by the signup service."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.models import CreditAccount, User


@receiver(post_save, sender=User, dispatch_uid="accounts.create_credit_account")
def create_credit_account(sender, instance: User, created: bool, raw: bool = False, **kwargs):
    if created and not raw:
        CreditAccount.objects.get_or_create(user=instance)
