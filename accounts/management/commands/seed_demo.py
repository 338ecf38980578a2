"""`seed_demo`: the development users `make run` prints. Safe to run again and again."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import ledger
from accounts.models import CreditAccount, User

# Development only (the command refuses to run without DEBUG): fixed, documented, printed.
DEMO_USERS = [
    # username, password, email, staff, credits
    ("admin", "admin", "admin@example.com", True, 5_000),
    ("demo", "demo", "demo@example.com", False, 5_000),
]


class Command(BaseCommand):
    help = (
        "Create the development users: a superuser 'admin' and a user 'demo', each with "
        "5,000 credits and a verified email address. Idempotent; refuses to run unless "
        "DEBUG is on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="set the documented passwords again even if they were changed",
        )

    def handle(self, *args, reset_passwords: bool = False, **options) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates users with well-known passwords: it runs only with DEBUG=1."
            )
        lines = []
        for username, password, email, staff, credits in DEMO_USERS:
            with transaction.atomic():
                user, created = User.objects.get_or_create(
                    username=username,
                    defaults={"email": email, "is_staff": staff, "is_superuser": staff},
                )
                if created or reset_passwords:
                    user.set_password(password)
                    user.save(update_fields=["password"])
                # Verified, so that logging in never waits for a confirmation email.
                EmailAddress.objects.update_or_create(
                    user=user,
                    email__iexact=user.email,
                    defaults={"email": user.email, "verified": True, "primary": True},
                )
                # One key per user: running seed_demo again never grants twice.
                ledger.grant(
                    user=user,
                    amount=credits,
                    reason="Demo credits (seed_demo)",
                    idempotency_key=f"seed_demo:{username}",
                )
            account = CreditAccount.objects.get(user=user)
            if user.check_password(password):
                shown = f"password {password!r}"
            else:
                shown = (
                    "password changed since it was seeded (seed_demo --reset-passwords "
                    f"sets it back to {password!r})"
                )
            role = "superuser" if user.is_superuser else "user"
            state = "created" if created else "exists"
            lines.append(
                f"  {role:<9} {username!r:<8} {shown}; {account.available} credits "
                f"available ({state})"
            )

        self.stdout.write("Development users (DEBUG only, never in production):")
        for line in lines:
            self.stdout.write(line)
        if not settings.FAL_KEY:
            self.stdout.write(
                self.style.WARNING(
                    "FAL_KEY is not set: generations use the simulated fal backend "
                    "(no real videos, no cost). Set FAL_KEY to use fal.ai."
                )
            )
