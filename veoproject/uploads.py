"""How much of an upload we accept: as many images of IMAGE_MAX_BYTES as the model that
takes the most (`generations.catalogue`), and a form around them.

Django writes an upload to memory, then to a temporary file, as it reads it, before any
form or serializer looks at its size. `ImageSizeLimitUploadHandler` sits first in
FILE_UPLOAD_HANDLERS and keeps every byte past the limit from the handlers after it, so an
oversized upload is never written anywhere; the view gets a `RefusedUpload` of the size
that was sent, which validation refuses like any image that is too large.
"""

from __future__ import annotations

import io
import logging

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from generations import catalogue

logger = logging.getLogger(__name__)

# Room for the form fields beside the images (the prompt is 2,500 characters at most) and
# each file's part headers.
FORM_FIELDS_ALLOWANCE = 256 * 1024


def images_taken(model: catalogue.Model) -> int:
    """How many images one request for `model` carries at most: one per image field, and
    up to `max_references` under `image_urls`."""
    return sum(model.max_references if name == "image_urls" else 1 for name in model.image_fields)


def images_per_request() -> int:
    """The most images any request carries: the catalogue's model that takes the most."""
    return max(images_taken(model) for model in catalogue.MODELS.values())


def upload_body_limit() -> int:
    """The largest multipart body worth reading: a full-size image in each image slot of
    the model that has the most, and its form fields. A larger body is valid for no model."""
    return images_per_request() * settings.IMAGE_MAX_BYTES + FORM_FIELDS_ALLOWANCE


class RefusedUpload(UploadedFile):
    """An upload that was too large: its size as sent, none of its bytes."""

    def __init__(self, *, name: str | None, size: int, content_type: str | None) -> None:
        super().__init__(io.BytesIO(), name=name, content_type=content_type, size=size)


class ImageSizeLimitUploadHandler(FileUploadHandler):
    """Passes a file's chunks on to the next handler up to IMAGE_MAX_BYTES, and none past
    it (nor any chunk at all when the whole body is already over the limit)."""

    body_too_large = False
    too_large = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.body_too_large = content_length > upload_body_limit()
        return None  # the normal parser goes on

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.too_large = self.body_too_large

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if self.too_large or start + len(raw_data) > settings.IMAGE_MAX_BYTES:
            self.too_large = True
            return None  # the handlers after this one never see it
        return raw_data

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if not self.too_large:
            return None  # the next handler returns the file it stored
        # The part the next handler kept before the limit (at most IMAGE_MAX_BYTES, in a
        # temporary file) goes now: closing a temporary upload deletes it.
        for handler in getattr(self.request, "upload_handlers", ()):
            if handler is not self and getattr(handler, "file", None) is not None:
                handler.file.close()
        logger.info("event=upload_refused_too_large bytes=%s", file_size)
        return RefusedUpload(name=self.file_name, size=file_size, content_type=self.content_type)
