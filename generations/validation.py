"""The rule for an uploaded image: what a request's `image` must be before anything is
charged or sent to fal. The request itself (fields, defaults, the rules across fields) is
declared in `generations.requests`, which calls this.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _

from generations.images import SIGNATURES, STORED_FORMATS, UNREADABLE, opened_upload

# Pillow's format name -> our extension.
ALLOWED_IMAGE_FORMATS = {name: extension for name, (extension, _) in STORED_FORMATS.items()}
MIN_IMAGE_SIDE = 720  # the model card asks for 720p or more

# What a refused image is told: by `check_image_file`, and by the studio page before the
# upload (`image_rules`, rendered into the page for its script). One set of words.
# Translated lazily: each is read in the language of the page or request that shows it.
TOO_LARGE = _("The image is too large (at most {max_mb} MB).")
EMPTY = _("The image file is empty.")
TOO_MANY_PIXELS = _("The image has too many pixels.")
WRONG_FORMAT = _("Upload a JPEG, PNG or WebP image.")
TOO_SMALL = _(
    "The image is {width}x{height}; Veo needs at least {min_side}p "
    "(the shorter side {min_side} pixels or more)."
)


def image_rules() -> dict:
    """The rules of `check_image_file` and their words, for a page's own check before the
    upload: sizes, how a file of each accepted format begins (hex, by offset), and the
    messages (`{width}` and `{height}` left for the page to fill in)."""
    return {
        "max_bytes": settings.IMAGE_MAX_BYTES,
        "max_pixels": settings.IMAGE_MAX_PIXELS,
        "min_side": MIN_IMAGE_SIDE,
        "signatures": [
            [[offset, part.hex()] for offset, part in SIGNATURES[name]] for name in STORED_FORMATS
        ],
        "messages": {
            "unreadable": str(UNREADABLE),
            "too_large": TOO_LARGE.format(max_mb=settings.IMAGE_MAX_BYTES // (1024 * 1024)),
            "empty": str(EMPTY),
            "too_many_pixels": str(TOO_MANY_PIXELS),
            "wrong_format": str(WRONG_FORMAT),
            "too_small": TOO_SMALL.format(
                width="{width}", height="{height}", min_side=MIN_IMAGE_SIDE
            ),
        },
    }


def check_image_file(image_file: UploadedFile) -> str:
    """Decode the upload with Pillow (never trust its name); returns its format's extension."""
    if image_file.size is None or image_file.size > settings.IMAGE_MAX_BYTES:
        raise ValidationError(TOO_LARGE.format(max_mb=settings.IMAGE_MAX_BYTES // (1024 * 1024)))
    if image_file.size == 0:
        raise ValidationError(EMPTY)
    with opened_upload(image_file) as image:
        width, height = image.size
        if width * height > settings.IMAGE_MAX_PIXELS:
            raise ValidationError(TOO_MANY_PIXELS)
        if image.format not in ALLOWED_IMAGE_FORMATS:
            raise ValidationError(WRONG_FORMAT)
        image.verify()
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValidationError(TOO_SMALL.format(width=width, height=height, min_side=MIN_IMAGE_SIDE))
    return ALLOWED_IMAGE_FORMATS[image.format]
