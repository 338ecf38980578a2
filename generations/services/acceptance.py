"""Accepting a request: validate, quote, hold, create, enqueue; idempotent by key."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import ledger
from accounts.models import CreditAccount, User
from generations import images, pricing
from generations.dispatch import DISPATCH_GRACE, enqueue
from generations.models import Generation
from generations.moderation import find_blocked_term
from generations.requests import validate_request
from notifications import low_balance
from veoproject.exceptions import (
    IdempotencyKeyReused,
    LimitExceeded,
    StorageError,
    ValidationFailed,
)
from veoproject.storage import storage_errors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AcceptResult:
    generation: Generation
    replayed: bool = False


def _image_digest(image_file: UploadedFile | None) -> str:
    if image_file is None:
        return ""
    digest = hashlib.sha256()
    image_file.seek(0)
    for chunk in image_file.chunks():
        digest.update(chunk)
    image_file.seek(0)
    return digest.hexdigest()


def _normalised(image_file: UploadedFile) -> ContentFile:
    try:
        return images.normalised_upload(image_file)
    except ValidationError as exc:
        raise ValidationFailed(fields={"image": exc.messages}) from None


def _replay(*, user: User, idempotency_key: str, fingerprint: str) -> AcceptResult | None:
    earlier = Generation.objects.filter(owner=user, idempotency_key=idempotency_key).first()
    if earlier is None:
        return None
    if earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    return AcceptResult(generation=earlier, replayed=True)


def _check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255 or not key.isprintable():
        raise ValidationFailed(
            "The Idempotency-Key must be 1 to 255 printable characters.",
            code="invalid_idempotency_key",
        )
    return key


def accept(
    *,
    user: User,
    params: Mapping[str, Any],
    image_file: UploadedFile | None = None,
    idempotency_key: str | None = None,
) -> AcceptResult:
    """Validate, quote, hold the credits, create the generation and enqueue its submit, in
    one transaction. `params` is the request as sent (an API body, the portal form's
    values), checked by `generations.requests`; `image_file` is the uploaded image when it
    is not in `params`. With an Idempotency-Key, the same request again returns the first
    generation (`replayed=True`); a different request with that key is refused."""
    idempotency_key = _check_idempotency_key(idempotency_key)
    rates = pricing.active_rates()
    valid = validate_request(params=params, image_file=image_file, rates=rates)
    clean, image_file = valid.params, valid.image
    fingerprint = clean.fingerprint(_image_digest(image_file))
    if idempotency_key:
        earlier = _replay(user=user, idempotency_key=idempotency_key, fingerprint=fingerprint)
        if earlier:
            return earlier

    blocked = find_blocked_term(clean.prompt)
    if blocked:
        raise ValidationFailed(
            "The prompt contains a term that is not allowed on this service.",
            code="blocked_term",
            fields={"prompt": ["This prompt contains a term that is not allowed."]},
        )
    quote = pricing.quote(
        duration=clean.duration,
        resolution=clean.resolution,
        generate_audio=clean.generate_audio,
        rates=rates,
    )
    # What we store, serve and send to fal is our own encoding under our own name, never
    # the client's bytes or filename (see generations/images.py).
    stored_image = _normalised(image_file) if image_file is not None else None
    now = timezone.now()
    generation = Generation(
        owner=user,
        prompt=clean.prompt,
        image_url=clean.image_url,
        aspect_ratio=clean.aspect_ratio,
        duration=clean.duration,
        resolution=clean.resolution,
        generate_audio=clean.generate_audio,
        endpoint=quote.endpoint,
        cost_credits=quote.credits,
        callback_url=clean.callback_url,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        next_poll_at=now + DISPATCH_GRACE,
        deadline_at=now + timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS),
    )
    if stored_image is not None:
        # Before the transaction: a slow or refusing storage holds no database lock.
        _store_image(generation, stored_image)
    try:
        with transaction.atomic():
            _check_in_flight_cap(user)
            generation.save(force_insert=True)
            # A brand-new generation cannot clash with an earlier hold: no savepoint.
            held = ledger.hold(generation=generation, savepoint=False)
            low_balance.after_hold(user_id=user.pk, entry=held, rates=rates)
            transaction.on_commit(lambda: enqueue("submit", generation.pk))
    except IntegrityError:
        _delete_file(generation.image)
        if idempotency_key:  # the same key raced in from a parallel request
            earlier = _replay(user=user, idempotency_key=idempotency_key, fingerprint=fingerprint)
            if earlier:
                return earlier
        raise
    except Exception:
        _delete_file(generation.image)
        raise
    logger.info(
        "event=generation_accepted generation=%s user=%s cost=%s",
        generation.pk,
        user.pk,
        generation.cost_credits,
    )
    return AcceptResult(generation=generation)


def _store_image(generation: Generation, image: ContentFile) -> None:
    """Save the re-encoded upload; a storage that refuses it (full disk, S3 outage) is a
    503 that charges nothing, its raw cause logged for staff."""
    try:
        with storage_errors("storing an uploaded image"):
            generation.image.save(image.name, image, save=False)
    except OSError as exc:
        _delete_file(generation.image)
        logger.error("event=image_store_failed user=%s error=%r", generation.owner_id, str(exc))
        raise StorageError() from exc


def _check_in_flight_cap(user: User) -> None:
    cap = settings.MAX_IN_FLIGHT_PER_USER
    if not cap:
        return
    # Serialise this user's accepts, so the cap holds under concurrency (a row lock on
    # PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers).
    CreditAccount.objects.select_for_update().filter(user=user).first()
    if Generation.objects.filter(owner=user).in_flight().count() >= cap:
        raise LimitExceeded(
            f"You have {cap} generations in progress; wait for one to finish.",
            retry_after=15,
        )


def _delete_file(field) -> None:
    if field and field.name:
        try:
            field.storage.delete(field.name)
        except OSError:
            logger.warning("event=orphan_file_not_deleted name=%s", field.name)
