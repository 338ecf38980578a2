"""A generation request, declared once: its fields, their defaults and allowed values, and
the rules across fields.

Every way in reads this module: the API's create (through `services.accept`) and quote
(`quote_request`), their OpenAPI schema (`generations.serializers` names these
serializers), the portal's form (its choices and initial values come from `choices()` and
`DEFAULTS`; `services.accept` validates what it sends) and `services.accept` itself
(`validate_request`). fal accepts any JSON at submit and reports bad input only when the
result is fetched (and may bill it), so everything is checked here first.

- `DEFAULTS`: fal's own defaults for the model, used when a field is absent.
- `ENUMS` and `choices()`: the values each option takes; a resolution only while it has an
  active price. A model catalogue narrows these per model, here and nowhere else.
- `GenerationOptionsSerializer`: the options, which set the price and the frame; a quote
  reads only these.
- `GenerationRequestSerializer`: a create: the options, a prompt, exactly one image (an
  upload or a public https URL) and an optional callback URL.
- `validate_request` / `validate_params`: the service-level entry points. Every field's
  errors come at once, as `ValidationFailed(fields=...)`.

The rules about things from outside live in their own modules and are only called here:
the uploaded image (`generations.validation.check_image_file`), public addresses
(`veoproject.public_urls`) and callback URLs (`generations.callbacks`).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, TypedDict

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField, empty

from generations import pricing
from generations.callbacks import CallbackUrlRefused, check_callback_url
from generations.models import AspectRatio, Duration, Resolution
from generations.pricing import Quote, Rates
from generations.validation import MIN_IMAGE_SIDE, check_image_file
from veoproject.exceptions import ValidationFailed
from veoproject.public_urls import check_public_url

OptionName = Literal["aspect_ratio", "duration", "resolution"]


class Defaults(TypedDict):
    aspect_ratio: str
    duration: str
    resolution: str
    generate_audio: bool


# What a request gets for an option it does not send: fal's own defaults for
# fal-ai/veo3.1/image-to-video.
DEFAULTS: Final[Defaults] = {
    "aspect_ratio": AspectRatio.LANDSCAPE.value,
    "duration": Duration.S8.value,
    "resolution": Resolution.P720.value,
    "generate_audio": True,
}

# The values each option can ever take (the schema's enums, the portal's radio buttons).
ENUMS: Final[Mapping[OptionName, type[models.TextChoices]]] = MappingProxyType(
    {"aspect_ratio": AspectRatio, "duration": Duration, "resolution": Resolution}
)


def choices(name: OptionName, *, rates: Rates | None = None) -> list[tuple[str, str]]:
    """The (value, label) pairs option `name` takes now: its enum, and for the resolution
    only those with an active price (read from `rates`, or from the database). The one
    place that says which values a request may take: the serializers and the portal's
    form ask it."""
    enum = ENUMS[name]
    labels = dict(enum.choices)
    values = pricing.orderable_resolutions(rates=rates) if name == "resolution" else enum.values
    return [(value, labels[value]) for value in values]


@dataclass(frozen=True)
class GenerationParams:
    """A checked request: what accept stores and sends to fal. Its fields and fingerprint
    are what stored Idempotency-Keys were matched with: keep them as they are."""

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


@dataclass(frozen=True)
class ValidRequest:
    """A request that passed every rule: what to store and send to fal, and the uploaded
    image when the image came as a file."""

    params: GenerationParams
    image: UploadedFile | None


def _option(name: OptionName, help_text: str) -> serializers.CharField:
    """A string option, documented as its enum. It is checked against `choices()` (not a
    ChoiceField) so that the message can name the values allowed now."""

    @extend_schema_field(serializers.ChoiceField(choices=ENUMS[name].choices))
    class Option(serializers.CharField):
        pass

    return Option(default=DEFAULTS[name], help_text=help_text)


class GenerationOptionsSerializer(serializers.Serializer):
    """The options: what sets the price (duration, resolution, audio) and the frame."""

    aspect_ratio = _option(
        "aspect_ratio",
        f"{' or '.join(AspectRatio.labels)}; default {DEFAULTS['aspect_ratio']}.",
    )
    duration = _option("duration", f"Video length; default {DEFAULTS['duration']}.")
    resolution = _option(
        "resolution",
        f"Default {DEFAULTS['resolution']}; only resolutions with an active price can be ordered.",
    )
    generate_audio = serializers.BooleanField(
        default=DEFAULTS["generate_audio"],
        help_text=f"Dialogue, effects and ambience; default "
        f"{str(DEFAULTS['generate_audio']).lower()}. Without audio it costs half. "
        "Multipart forms may send true/false, 1/0, on/off.",
    )

    def validate_aspect_ratio(self, value: str) -> str:
        return self._one_of("aspect_ratio", value)

    def validate_duration(self, value: str) -> str:
        return self._one_of("duration", value)

    def validate_resolution(self, value: str) -> str:
        return self._one_of("resolution", value)

    def _one_of(self, name: OptionName, value: str) -> str:
        allowed = [allowed for allowed, _ in choices(name, rates=self.context.get("rates"))]
        if value not in allowed:
            label = name.replace("_", " ")
            raise serializers.ValidationError(f"Choose a {label}: {', '.join(allowed)}.")
        return value


class GenerationRequestSerializer(GenerationOptionsSerializer):
    """A generation to start: the options, a prompt, one image (an upload or a public https
    URL) and an optional callback URL."""

    prompt = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="What should happen in the video. Sent to the model exactly as written "
        f"(at most {settings.PROMPT_MAX_CHARS} characters).",
    )
    image_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=f"A public https URL of the first frame ({MIN_IMAGE_SIDE}p or more, "
        f"{' or '.join(AspectRatio.values)}). Give this or upload `image` (multipart), "
        "not both.",
    )
    image = serializers.FileField(
        required=False,
        help_text="multipart/form-data only: a JPEG, PNG or WebP file "
        f"({MIN_IMAGE_SIDE}p or more).",
    )
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Optional http(s) URL we POST the generation JSON to when it ends, signed "
        "with your webhook secret (header X-Veo-Signature). Must be a public address.",
    )

    def validate_prompt(self, prompt: str) -> str:
        if not prompt.strip():
            raise serializers.ValidationError("Describe the video you want.")
        if len(prompt) > settings.PROMPT_MAX_CHARS:
            raise serializers.ValidationError(
                f"Keep the prompt under {settings.PROMPT_MAX_CHARS} characters "
                f"(it has {len(prompt)})."
            )
        if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in prompt):
            raise serializers.ValidationError("The prompt contains control characters.")
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in prompt):
            raise serializers.ValidationError("The prompt contains invalid characters.")
        return prompt

    def validate_image(self, image: UploadedFile) -> UploadedFile:
        check_image_file(image)
        return image

    def validate_image_url(self, url: str) -> str:
        return check_public_url(url, schemes=("https",)) if url else ""

    def validate_callback_url(self, url: str) -> str:
        if not url:
            return ""
        # The callback rule, with the name resolved now: a client hears at once of a host
        # that does not resolve or resolves inside our network (each delivery checks again).
        try:
            check_callback_url(url, resolve=True)
        except CallbackUrlRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return check_public_url(
            url, schemes=("https", "http"), allow_private=settings.PRIVATE_URLS_ALLOWED
        )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """The fields' own rules and what a request must carry (a prompt, exactly one
        image), with every error in one answer: DRF alone checks a rule across fields
        (`validate`) only once every field has passed."""
        missing = self._presence_errors(data) if isinstance(data, Mapping) else {}
        try:
            values: dict[str, Any] = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors: dict[str, Any] = dict(exc.detail) if isinstance(exc.detail, Mapping) else {}
            for name, messages in missing.items():
                errors[name] = [*errors.get(name, []), *messages]
            raise serializers.ValidationError(errors or exc.detail) from None
        if missing:
            raise serializers.ValidationError(missing)
        return values

    def _presence_errors(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        if self.fields["prompt"].get_value(data) is empty:
            errors["prompt"] = ["Describe the video you want."]
        image, image_url = self._gives("image", data), self._gives("image_url", data)
        if image and image_url:
            errors["image_url"] = ["Send either an image file or an image URL, not both."]
        elif image is False and image_url is False:
            errors["image"] = ["Upload an image or give an image URL."]
        return errors

    def _gives(self, name: str, data: Mapping[str, Any]) -> bool | None:
        """Whether the request gives a non-empty `name`, as that field reads it (a URL of
        spaces is none); None when the field cannot read it: its own error says why."""
        field = self.fields[name]
        try:
            return bool(field.run_validation(field.get_value(data)))
        except SkipField:
            return False
        except (serializers.ValidationError, DjangoValidationError):
            return None


def _validated(
    serializer_class: type[serializers.Serializer], data: Any, rates: Rates | None
) -> dict[str, Any]:
    serializer = serializer_class(data=data, context={"rates": rates})
    if not serializer.is_valid():
        raise ValidationFailed(
            fields={
                str(name): [str(message) for message in messages]
                for name, messages in serializer.errors.items()
            }
        )
    return dict(serializer.validated_data)


def validate_request(
    *,
    params: Mapping[str, Any],
    image_file: UploadedFile | None = None,
    rates: Rates | None = None,
) -> ValidRequest:
    """Check a create against every rule (ValidationFailed with every field's errors).
    `params` is the request's body (an API request's data, the portal form's values);
    `image_file`, when given, is its uploaded image. `rates` (from
    `pricing.active_rates`) decides which resolutions are orderable; without them they
    are read from the database."""
    data = params if image_file is None else {**params, "image": image_file}
    values = _validated(GenerationRequestSerializer, data, rates)
    checked = GenerationParams(
        prompt=values["prompt"],
        image_url=values.get("image_url", ""),
        aspect_ratio=values["aspect_ratio"],
        duration=values["duration"],
        resolution=values["resolution"],
        generate_audio=values["generate_audio"],
        callback_url=values.get("callback_url", ""),
    )
    return ValidRequest(params=checked, image=values.get("image"))


def validate_params(
    *,
    params: Mapping[str, Any],
    image_file: UploadedFile | None = None,
    rates: Rates | None = None,
) -> GenerationParams:
    """`validate_request`, for callers that need only the checked parameters."""
    return validate_request(params=params, image_file=image_file, rates=rates).params


def quote_request(*, params: Mapping[str, Any]) -> Quote:
    """The price of the options a request names (the API's quote), read by the same
    definition as a create; prompt, image and callback URL do not change a price and are
    not read. Raises ValidationFailed, or PricingError when no price matches."""
    rates = pricing.active_rates()
    values = _validated(GenerationOptionsSerializer, params, rates)
    return pricing.quote(
        duration=values["duration"],
        resolution=values["resolution"],
        generate_audio=values["generate_audio"],
        rates=rates,
    )
