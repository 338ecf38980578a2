"""Checks on what a user asks for, before anything is charged or sent to fal.

fal accepts any JSON at submit and reports bad input only when the result is fetched (and
may bill it), so everything is validated here first.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from generations.models import AspectRatio, Duration
from generations.pricing import Rates, orderable_resolutions
from veoproject.exceptions import ValidationFailed
from veoproject.public_urls import check_public_url

ALLOWED_IMAGE_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MIN_IMAGE_SIDE = 720  # the model card asks for 720p or more


@dataclass(frozen=True)
class GenerationParams:
    prompt: str
    image_url: str
    aspect_ratio: str
    duration: str
    resolution: str
    generate_audio: bool
    callback_url: str

    def fingerprint(self, image_digest: str = "") -> str:
        """What makes two requests "the same" for Idempotency-Key replays."""
        payload = json.dumps({**asdict(self), "image": image_digest}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def _check_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValidationError("Describe the video you want.")
    if len(prompt) > settings.PROMPT_MAX_CHARS:
        raise ValidationError(
            f"Keep the prompt under {settings.PROMPT_MAX_CHARS} characters (it has {len(prompt)})."
        )
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in prompt):
        raise ValidationError("The prompt contains control characters.")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in prompt):
        raise ValidationError("The prompt contains invalid characters.")
    return prompt


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


def _check_choice(value: Any, choices: list[str], label: str) -> str:
    if value not in choices:
        raise ValidationError(f"Choose a {label}: {', '.join(choices)}.")
    return value


def validate_params(
    *,
    params: dict[str, Any],
    image_file: UploadedFile | None = None,
    rates: Rates | None = None,
) -> GenerationParams:
    """All field errors at once, as ValidationFailed(fields=...); defaults as fal's schema."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}

    def check(field: str, func, *args, **kwargs) -> None:
        try:
            clean[field] = func(*args, **kwargs)
        except ValidationError as exc:
            errors.setdefault(field, []).extend(exc.messages)

    check("prompt", _check_prompt, params.get("prompt"))

    image_url = params.get("image_url") or ""
    if image_file is not None and image_url:
        errors["image_url"] = ["Send either an image file or an image URL, not both."]
    elif image_file is not None:
        check("image", check_image_file, image_file)
        clean["image_url"] = ""
    elif image_url:
        if not isinstance(image_url, str):
            errors["image_url"] = ["Enter a valid https URL."]
        else:
            check("image_url", check_public_url, image_url.strip(), schemes=("https",))
    else:
        errors["image"] = ["Upload an image or give an image URL."]

    check(
        "aspect_ratio",
        _check_choice,
        params.get("aspect_ratio") or AspectRatio.LANDSCAPE,
        AspectRatio.values,
        "aspect ratio",
    )
    check(
        "duration",
        _check_choice,
        params.get("duration") or Duration.S8,
        Duration.values,
        "duration",
    )
    check(
        "resolution",
        _check_choice,
        params.get("resolution") or "720p",
        orderable_resolutions(rates=rates),
        "resolution",
    )
    audio = params.get("generate_audio", True)
    if not isinstance(audio, bool):
        errors["generate_audio"] = ["Must be true or false."]
    clean["generate_audio"] = audio

    callback_url = params.get("callback_url") or ""
    if callback_url:
        if not isinstance(callback_url, str):
            errors["callback_url"] = ["Enter a valid URL."]
        else:
            check(
                "callback_url",
                check_public_url,
                callback_url.strip(),
                schemes=("https", "http"),
                allow_private=settings.PRIVATE_URLS_ALLOWED,
            )
    else:
        clean["callback_url"] = ""

    if errors:
        raise ValidationFailed(fields=errors)
    return GenerationParams(
        prompt=clean["prompt"],
        image_url=clean["image_url"],
        aspect_ratio=clean["aspect_ratio"],
        duration=clean["duration"],
        resolution=clean["resolution"],
        generate_audio=clean["generate_audio"],
        callback_url=clean["callback_url"],
    )
