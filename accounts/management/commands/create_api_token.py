"""`create_api_token <username> --name NAME`: mint an API token and print it once.

Only the token goes to stdout, so a script can capture it:
``TOKEN=$(python manage.py create_api_token demo --name cli)``.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts import tokens
from accounts.models import User
from veoproject.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Create an API token for a user and print it (it is shown only this once; only its "
        "hash is stored)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what the token is for, e.g. 'cli'")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            default=None,
            help="expire the token after this many days (default: never)",
        )

    def handle(self, *args, username: str, name: str, expires_in_days: int | None, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_active:
            raise CommandError(f"{username!r} is suspended; its tokens would not work.")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be a positive number of days.")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            token, raw = tokens.create_token(user=user, name=name, expires_at=expires_at)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(
            f"Token {token.name!r} for {user.username} (id {token.pk}"
            + (f", expires {expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "")
            + "). It is shown only now; store it safely:"
        )
        self.stdout.write(raw)
