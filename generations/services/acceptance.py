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
from django.utils.translation import gettext

from accounts import ledger
from accounts.models import CreditAccount, User
from generations import catalogue, fair_share, images, pricing, quotes
from generations.dispatch import DISPATCH_GRACE, enqueue
from generations.models import Generation, GenerationImage
from generations.moderation import find_blocked_term
from generations.requests import ValidRequest, validate_request
from notifications import low_balance
from veoproject.exceptions import (
    ApplicationError,
    IdempotencyKeyReused,
    LimitExceeded,
    StorageError,
    ValidationFailed,
)
from veoproject.inserts import insert_row
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


def _normalised(image_file: UploadedFile, field: str = "image") -> ContentFile:
    try:
        return images.normalised_upload(image_file)
    except ValidationError as exc:
        raise ValidationFailed(fields={field: exc.messages}) from None


# The request field an input slot's upload came in (for its errors).
_UPLOAD_FIELDS = {
    "first_frame_url": "first_frame",
    "last_frame_url": "last_frame",
    "image_urls": "reference_images",
}


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
            gettext("The Idempotency-Key must be 1 to 255 printable characters."),
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
    generation (`replayed=True`); a different request with that key is refused. A
    `quote_id` or `max_cost_credits` in `params` binds the price (`generations.quotes`)."""
    idempotency_key = _check_idempotency_key(idempotency_key)
    valid = validate_request(params=params, image_file=image_file)
    rates = valid.rates  # the chosen model's active rates, read once
    clean, image_file = valid.params, valid.image
    fingerprint = clean.fingerprint(_images_digest(valid))
    # An Idempotency-Key is looked up only when this accept cannot go ahead: the insert's
    # unique key finds a replay (IntegrityError below), and any refusal (blocked term,
    # in-flight cap, quote used, price changed, credits) first answers the replay if the
    # key has one. Uploads are the exception: a replay should not re-encode and store them.
    if idempotency_key and (image_file is not None or valid.input_files):
        earlier = _replay(user=user, idempotency_key=idempotency_key, fingerprint=fingerprint)
        if earlier:
            return earlier

    blocked = find_blocked_term(clean.prompt)
    if blocked:
        if idempotency_key:
            earlier = _replay(user=user, idempotency_key=idempotency_key, fingerprint=fingerprint)
            if earlier:
                return earlier
        raise ValidationFailed(
            gettext("The prompt contains a term that is not allowed on this service."),
            code="blocked_term",
            fields={"prompt": [gettext("This prompt contains a term that is not allowed.")]},
        )
    quote = pricing.quote(
        duration=clean.duration,
        resolution=clean.resolution,
        generate_audio=clean.generate_audio,
        endpoint=catalogue.get(clean.model).endpoint,
        rates=rates,
    )
    # What we store, serve and send to fal is our own encoding under our own name, never
    # the client's bytes or filename (see generations/images.py).
    stored_image = _normalised(image_file) if image_file is not None else None
    now = timezone.now()
    # With FAL_MAX_CONCURRENCY it waits in our queue for a slot (`fair_share`), not due.
    status = fair_share.status_at_accept()
    generation = Generation(
        owner=user,
        status=status,
        prompt=clean.prompt,
        image_url=clean.image_url,
        aspect_ratio=clean.aspect_ratio,
        duration=clean.duration,
        resolution=clean.resolution,
        generate_audio=clean.generate_audio,
        endpoint=quote.endpoint,
        model=clean.model,
        model_options=dict(clean.model_options),
        cost_credits=quote.credits,
        callback_url=clean.callback_url,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        next_poll_at=now + DISPATCH_GRACE if status == Generation.Status.PENDING else None,
        deadline_at=now + timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS),
    )
    if stored_image is not None:
        # Before the transaction: a slow or refusing storage holds no database lock.
        _store_image(generation, stored_image)
    inputs = _input_images(generation, valid)  # also stored before the transaction
    try:
        with transaction.atomic():
            _check_in_flight_cap(user)
            # The price the client agreed to (a quote, a ceiling) or refused here; a
            # quote claimed here goes back if this transaction does not commit.
            charge = quotes.price_to_charge(
                user=user,
                current=quote,
                options=clean,
                quote_id=valid.quote_id,
                max_cost_credits=valid.max_cost_credits,
            )
            generation.cost_credits = charge.credits
            generation.quote_id = charge.quote_id
            generation.price_breakdown = charge.price_breakdown
            insert_row(generation)  # the INSERT built once (veoproject/inserts.py)
            GenerationImage.objects.bulk_create(inputs)
            _remember_input_images(generation, inputs)
            # A brand-new generation cannot clash with an earlier hold: no savepoint.
            held = ledger.hold(generation=generation, savepoint=False)
            # The warning's threshold is the price of a default video: the default
            # model's rates.
            default_rates = rates if clean.model == catalogue.DEFAULT_MODEL else None
            low_balance.after_hold(
                user_id=user.pk, entry=held, rates=default_rates or pricing.active_rates()
            )
            transaction.on_commit(lambda: enqueue("submit", generation.pk))
    except IntegrityError:
        _delete_file(generation.image)
        _delete_inputs(inputs)
        if idempotency_key:  # the key's first request, earlier or in parallel
            earlier = _replay(user=user, idempotency_key=idempotency_key, fingerprint=fingerprint)
            if earlier:
                return earlier
        raise
    except ApplicationError:
        _delete_file(generation.image)
        _delete_inputs(inputs)
        if idempotency_key:  # a refusal now does not hide the key's first answer
            earlier = _replay(user=user, idempotency_key=idempotency_key, fingerprint=fingerprint)
            if earlier:
                return earlier
        raise
    except Exception:
        _delete_file(generation.image)
        _delete_inputs(inputs)
        raise
    logger.info(
        "event=generation_accepted generation=%s user=%s cost=%s",
        generation.pk,
        user.pk,
        generation.cost_credits,
    )
    return AcceptResult(generation=generation)


def _images_digest(valid: ValidRequest) -> str:
    """The uploads' digest for the fingerprint: the image's alone, as before the
    catalogue, when there are no other uploads."""
    digest = _image_digest(valid.image)
    if not valid.input_files:
        return digest
    parts = [f"{i.slot}:{i.position}:{_image_digest(i.file)}" for i in valid.input_files]
    return "|".join([digest, *parts])


def _input_images(generation: Generation, valid: ValidRequest) -> list[GenerationImage]:
    """The unsaved rows of a multi-image model's inputs: URLs as given (the worker fetches
    and checks them as it does `image_url`), uploads normalised and stored like `image`."""
    inputs = [
        GenerationImage(generation=generation, slot=i.slot, position=i.position, image_url=i.url)
        for i in valid.params.input_urls
    ]
    try:
        for upload in valid.input_files:
            row = GenerationImage(generation=generation, slot=upload.slot, position=upload.position)
            stored = _normalised(upload.file, _UPLOAD_FIELDS[upload.slot])
            try:
                with storage_errors("storing an uploaded image"):
                    row.image.save(stored.name, stored, save=False)
            except OSError as exc:
                logger.error("event=image_store_failed user=%s error=%r", generation.owner_id, exc)
                raise StorageError() from exc
            inputs.append(row)
    except Exception:
        _delete_file(generation.image)
        _delete_inputs(inputs)
        raise
    return inputs


def _remember_input_images(generation: Generation, inputs: list[GenerationImage]) -> None:
    """Let `generation.input_images.all()` (the API's answer) list the rows just inserted
    without reading them back, as `prefetch_related` would have filled it. Other
    querysets of the relation (`order_by`, `filter`) still read the database."""
    # A generation that has none (a model of one image) has none for good: an empty
    # queryset says so without building the relation's filter.
    queryset = (
        GenerationImage.objects.filter(generation=generation)
        if inputs
        else GenerationImage.objects.none()
    )
    # What Django's own prefetch stores (QuerySet and Model attributes it does not type).
    queryset._result_cache = sorted(inputs, key=lambda row: (row.slot, row.position))
    queryset._prefetch_done = True  # type: ignore[attr-defined]
    generation._prefetched_objects_cache = {"input_images": queryset}  # type: ignore[attr-defined]


def _delete_inputs(inputs: list[GenerationImage]) -> None:
    for row in inputs:
        _delete_file(row.image)


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
            gettext("You have %(count)s generations in progress; wait for one to finish.")
            % {"count": cap},
            retry_after=15,
        )


def _delete_file(field) -> None:
    if field and field.name:
        try:
            field.storage.delete(field.name)
        except OSError:
            logger.warning("event=orphan_file_not_deleted name=%s", field.name)
