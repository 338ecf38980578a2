"""The rule for an uploaded image: what a request's `image` must be before anything is
charged or sent to fal. The request itself (fields, defaults, the rules across fields) is
declared in `generations.requests`, which calls this.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

ALLOWED_IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MIN_IMAGE_SIDE = 720  # the model card asks for 720p or more


def check_image_file(image_file: UploadedFile) -> str:
    """Decode the upload with Pillow (never trust its name); returns its format's extension."""
    if image_file.size is None or image_file.size > settings.IMAGE_MAX_BYTES:
        raise ValidationError(
            f"The image is too large (at most {settings.IMAGE_MAX_BYTES // (1024 * 1024)} MB)."
        )
    if image_file.size == 0:
        raise ValidationError("The image file is empty.")
    image_file.seek(0)
    try:
        with Image.open(image_file) as image:
            width, height = image.size
            if width * height > settings.IMAGE_MAX_PIXELS:
                raise ValidationError("The image has too many pixels.")
            if image.format not in ALLOWED_IMAGE_FORMATS:
                raise ValidationError("Upload a JPEG, PNG or WebP image.")
            image.verify()
    except ValidationError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise ValidationError("This file is not a readable JPEG, PNG or WebP image.") from None
    finally:
        image_file.seek(0)
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValidationError(
            f"The image is {width}x{height}; Veo needs at least 720p "
            f"(the shorter side {MIN_IMAGE_SIDE} pixels or more)."
        )
    return ALLOWED_IMAGE_FORMATS[image.format]
