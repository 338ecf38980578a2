"""Try again: a new generation with the stored input image of one of the owner's earlier
generations, without uploading it again."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from generations.images import content_type_of_stored
from generations.models import Generation
from generations.services.acceptance import AcceptResult, accept
from veoproject.exceptions import StorageError, ValidationFailed
from veoproject.storage import storage_errors

logger = logging.getLogger(__name__)

IMAGE_GONE = "The earlier image is no longer available: choose an image."


def reusable_image_source(*, user: User, source_id: UUID) -> Generation | None:
    """The user's own generation `source_id` if its uploaded image can be used again (it
    has one and is not hidden by moderation); None otherwise, whoever's it is."""
    source = Generation.objects.filter(owner=user, pk=source_id).exclude(image="").first()
    if source is None or source.is_hidden:
        return None
    return source


def accept_again(
    *,
    user: User,
    source_id: UUID,
    params: Mapping[str, Any],
    idempotency_key: str | None = None,
) -> AcceptResult:
    """Accept `params` (without an image) with the stored input image of the user's own
    generation `source_id`, as `accept` does an upload.

    The stored bytes go through accept's own path: checked by the same image rule,
    encoded again and saved under the new generation's own name. The two generations never
    share a file, so deleting one never deletes the other's image. Anybody else's
    generation, one without a stored image or one hidden by moderation is refused like a
    missing image (ValidationFailed on `image`): the caller cannot tell them apart."""
    source = reusable_image_source(user=user, source_id=source_id)
    if source is None:
        raise ValidationFailed(fields={"image": [IMAGE_GONE]})
    try:
        with storage_errors("reading a stored image"), source.image.open("rb") as stored:
            data = stored.read()
    except FileNotFoundError:  # the file is gone from storage
        raise ValidationFailed(fields={"image": [IMAGE_GONE]}) from None
    except OSError as exc:  # our storage is down (StorageUnavailable, a failing disk)
        logger.error("event=image_read_failed generation=%s error=%r", source.pk, str(exc))
        raise StorageError(
            "We could not read that video's image just now. Nothing was charged; please "
            "try again in a minute."
        ) from exc
    name = source.image.name.rsplit("/", 1)[-1]
    upload = SimpleUploadedFile(
        name, data, content_type=content_type_of_stored(name) or "application/octet-stream"
    )
    return accept(user=user, params=params, image_file=upload, idempotency_key=idempotency_key)
