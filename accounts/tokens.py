"""API tokens and the webhook secret: creation, lookup, revocation, rotation.

A token reads ``veo_<prefix>_<secret>``: ``prefix`` (12 hex characters) is public and
stored as is, so a token is found with one indexed lookup; the whole token is stored only
as its SHA-256 (a fast hash is right here: the secret has 256 bits of entropy, so there is
nothing to brute-force) and compared in constant time. The token is shown once, when it is
created, and cannot be recovered afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import ApiToken, User, new_webhook_secret
from veoproject.exceptions import ApplicationError, ValidationFailed
from veoproject.model_fields import max_length

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "veo_"
MAX_ACTIVE_TOKENS_PER_USER = 50
MAX_NAME_LENGTH = max_length(ApiToken, "name")
# last_used_at is written at most this often per token, so that a busy integrator does not
# turn its token row into a hot row with one UPDATE per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_TOKEN_RE = re.compile(r"^veo_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")


class TokenInvalid(ApplicationError):
    """The presented token is malformed, unknown, revoked, expired or its user inactive.
    The message is safe to show to the caller."""

    code = "authentication_failed"
    http_status = 401
    default_message = gettext_lazy("Invalid token.")


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(
    *, user: User, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Mint a token for `user`. Returns the row and the raw token, which is never stored
    and must be shown to the user now."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(
            _("A token needs a name."), fields={"name": [_("This field is required.")]}
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            _("The name is too long."),
            fields={"name": [_("Use at most %(limit)s characters.") % {"limit": MAX_NAME_LENGTH}]},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(
            _("The expiry must be in the future."),
            fields={"expires_at": [_("Choose a time in the future.")]},
        )
    if active_tokens(user=user).count() >= MAX_ACTIVE_TOKENS_PER_USER:
        raise ValidationFailed(
            _("You already have %(count)s tokens; revoke one first.")
            % {"count": MAX_ACTIVE_TOKENS_PER_USER},
            code="too_many_tokens",
        )
    for _attempt in range(5):
        prefix = secrets.token_hex(6)
        raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    prefix=prefix,
                    token_hash=hash_token(raw),
                    expires_at=expires_at,
                )
        except IntegrityError:  # a prefix collision (1 in 2**48): draw again
            continue
        logger.info("event=api_token_created user=%s token=%s", user.pk, token.pk)
        return token, raw
    raise ApplicationError("Could not create a token; try again.")  # pragma: no cover


def authenticate_token(raw: str) -> ApiToken:
    """The active token for `raw`, with its user loaded; TokenInvalid otherwise.

    One query (token joined with its user), plus at most one UPDATE a minute for
    last_used_at.
    """
    match = _TOKEN_RE.match(raw)
    if match is None:
        raise TokenInvalid(_("Malformed token."))
    token = ApiToken.objects.select_related("user").filter(prefix=match["prefix"]).first()
    # Compare even when nothing was found, so the response time does not tell the two apart.
    expected = token.token_hash if token is not None else "0" * 64
    if not hmac.compare_digest(expected, hash_token(raw)) or token is None:
        raise TokenInvalid(_("Invalid token."))
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenInvalid(_("This token was revoked."))
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenInvalid(_("This token has expired."))
    if not token.user.is_active:
        raise TokenInvalid(_("This account is suspended."))
    _touch(token, now)
    return token


def _touch(token: ApiToken, now: datetime) -> None:
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    # Conditional, so that concurrent requests write once.
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION),
        pk=token.pk,
    ).update(last_used_at=now)
    token.last_used_at = now


def active_tokens(*, user: User):
    """A user's tokens that are not revoked (expired ones included, marked by expires_at),
    newest first."""
    return ApiToken.objects.filter(user=user, revoked_at__isnull=True).order_by(
        "-created_at", "-id"
    )


def revoke_token(*, token: ApiToken) -> ApiToken:
    """Revoke a token at once. Revoking twice keeps the first time."""
    now = timezone.now()
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        token.revoked_at = now
        logger.info("event=api_token_revoked user=%s token=%s", token.user_id, token.pk)
    else:
        token.refresh_from_db(fields=["revoked_at"])
    return token


def rotate_webhook_secret(user: User) -> str:
    """Give `user` a new secret for signing callbacks; the old one stops working at once
    (callbacks sent afterwards, retries included, are signed with the new one)."""
    secret = new_webhook_secret()
    User.objects.filter(pk=user.pk).update(webhook_secret=secret)
    user.webhook_secret = secret
    logger.info("event=webhook_secret_rotated user=%s", user.pk)
    return secret
