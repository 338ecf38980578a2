"""Uploaded images as we store them and send them to fal: re-encoded by us, under our name.

An upload that Pillow accepts can still carry anything in its metadata or after its last
chunk (HTML in a PNG text chunk, a script appended to a JPEG, GPS in EXIF). Decoding the
pixels and encoding them again keeps the picture and drops everything else, so what we
store, serve and send to fal is only an image, named by the format Pillow found
(`input.png`), never by the client.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

# The formats we accept (`validation.check_image_file`) and store, as (extension, content type).
STORED_FORMATS = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
}
CONTENT_TYPES = {extension: content_type for extension, content_type in STORED_FORMATS.values()}
# How a file of each format begins, as (offset, bytes) parts: Pillow knows a format by its
# content, never by the file's name or type, and a page checks the same before the upload.
SIGNATURES = {
    "JPEG": ((0, b"\xff\xd8\xff"),),
    "PNG": ((0, b"\x89PNG\r\n\x1a\n"),),
    "WEBP": ((0, b"RIFF"), (8, b"WEBP")),
}
UNREADABLE = _("This file is not a readable JPEG, PNG or WebP image.")
STORED_NAME_STEM = "input"
JPEG_QUALITY = 92
WEBP_QUALITY = 92


@contextmanager
def opened_upload(image_file: UploadedFile) -> Iterator[Image.Image]:
    """The upload opened by Pillow from its start, and rewound after: a file Pillow cannot
    read (or refuses as a decompression bomb) raises ValidationError."""
    image_file.seek(0)
    try:
        with Image.open(image_file) as image:
            yield image
    except ValidationError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise ValidationError(UNREADABLE) from None
    finally:
        image_file.seek(0)


def stored_name(extension: str) -> str:
    return f"{STORED_NAME_STEM}.{extension}"


def content_type_of_stored(name: str) -> str | None:
    """The content type of an image stored under our own name (`input.png`); None for a
    name we did not choose (an upload stored before uploads were renamed)."""
    basename = name.rsplit("/", 1)[-1]
    stem, _, extension = basename.rpartition(".")
    if stem != STORED_NAME_STEM:
        return None
    return CONTENT_TYPES.get(extension)


def sniff_content_type(file) -> str | None:
    """What Pillow says a stored image is (for files stored under a client's name)."""
    try:
        file.seek(0)
        with Image.open(file) as image:
            found = STORED_FORMATS.get(image.format or "")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return None
    finally:
        file.seek(0)
    return found[1] if found else None


def normalised_upload(image_file: UploadedFile) -> ContentFile:
    """The upload decoded and encoded again in its own format (orientation applied, EXIF,
    text chunks, XMP and trailing bytes gone), named `input.<ext>`. Call it after
    `validation.check_image_file` accepted the file. Raises ValidationError if the pixels
    cannot be decoded after all (verify() does not decode everything)."""
    with opened_upload(image_file) as original:
        image_format = original.format or ""
        if image_format not in STORED_FORMATS:
            raise ValidationError(_("Upload a JPEG, PNG or WebP image."))
        original.load()
        ImageOps.exif_transpose(original, in_place=True)  # no copy of a 40 MP image
        data = _encode(original, image_format)
    extension = STORED_FORMATS[image_format][0]
    logger.info(
        "event=upload_normalised format=%s bytes_in=%s bytes_out=%s",
        extension,
        image_file.size,
        len(data),
    )
    return ContentFile(data, name=stored_name(extension))


def _encode(image: Image.Image, image_format: str) -> bytes:
    # Pillow copies some metadata from `info` by itself (a JPEG comment, a PNG colour
    # profile): the image is encoded with an empty `info` and only what the pixels need is
    # passed on. The colour profile stays (without it colours shift) unless the mode
    # changes, when it would no longer describe the pixels.
    icc_profile = image.info.get("icc_profile")
    transparency = image.info.get("transparency")
    options: dict = {}
    if image_format == "JPEG":
        if image.mode not in ("RGB", "L"):
            image, icc_profile = image.convert("RGB"), None
        options["quality"] = JPEG_QUALITY
    elif image_format == "PNG":
        if transparency is not None:
            options["transparency"] = transparency
    elif image_format == "WEBP":
        if image.mode not in ("RGB", "RGBA"):
            mode = "RGBA" if image.has_transparency_data else "RGB"
            image, icc_profile = image.convert(mode), None
        options["quality"] = WEBP_QUALITY
    if icc_profile:
        options["icc_profile"] = icc_profile
    image.info = {}
    output = io.BytesIO()
    image.save(output, format=image_format, **options)
    return output.getvalue()
