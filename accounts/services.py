"""Account services: signing up."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from accounts import ledger
from accounts.models import User
from veoproject.exceptions import ValidationFailed
from veoproject.model_fields import max_length

logger = logging.getLogger(__name__)


def _signup_errors(*, username: str, email: str, password: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    try:
        if not username:
            raise ValidationError("Choose a username.")
        if len(username) > max_length(User, "username"):
            raise ValidationError("Use at most 150 characters.")
        User.username_validator(username)
    except ValidationError as exc:
        errors["username"] = list(exc.messages)
    else:
        if User.objects.filter(username__iexact=username).exists():
            errors["username"] = ["That username is taken."]
    try:
        if not email:
            raise ValidationError("Enter your email address.")
        validate_email(email)
    except ValidationError as exc:
        errors["email"] = list(exc.messages)
    else:
        if User.objects.filter(email__iexact=email).exists():
            errors["email"] = ["An account with this email address already exists."]
    try:
        password_validation.validate_password(password, user=User(username=username, email=email))
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    return errors


def user_signup(*, username: str, email: str, password: str) -> User:
    """Create an account and grant it `SIGNUP_CREDITS` through the ledger, in one
    transaction: a user never exists without the credits promised at signup.

    Raises ValidationFailed (with `.fields` for username, email, password) for a taken
    username or email (compared case-insensitively), an invalid one, or a weak password.
    """
    username = (username or "").strip()
    email = User.objects.normalize_email((email or "").strip())
    errors = _signup_errors(username=username, email=email, password=password or "")
    if errors:
        raise ValidationFailed("Some fields are invalid.", fields=errors)
    try:
        with transaction.atomic():
            user = User.objects.create_user(username=username, email=email, password=password)
            if settings.SIGNUP_CREDITS > 0:
                ledger.grant(
                    user=user,
                    amount=settings.SIGNUP_CREDITS,
                    reason="Welcome credits",
                    idempotency_key=f"signup:{user.pk}",
                )
    except IntegrityError:
        # Two signups raced for the same username or email; the other one won.
        raise ValidationFailed(
            "That username or email address was just taken.",
            fields={"username": ["That username or email address was just taken."]},
        ) from None
    logger.info("event=user_signup user=%s credits=%s", user.pk, settings.SIGNUP_CREDITS)
    return user
