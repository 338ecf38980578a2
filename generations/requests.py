"""A generation request, declared once: its fields, their defaults and allowed values, and
the rules across fields.

Every way in reads this module: the API's create (through `services.accept`) and quote
(`quote_request`), their OpenAPI schema (`generations.serializers` names these
serializers), the portal's form (its choices and initial values come from `choices()` and
`DEFAULTS`; `services.accept` validates what it sends) and `services.accept` itself
(`validate_request`). fal accepts any JSON at submit and reports bad input only when the
result is fetched (and may bill it), so everything is checked here first.

- `model`: a request names a model of `generations.catalogue` (fal's endpoint id; default
  `catalogue.DEFAULT_MODEL`). Only models with an active price are offered
  (`offered_models`). What a model accepts comes from its catalogue entry: its images,
  aspect ratios, durations, resolutions and optional arguments; errors name its values.
- `DEFAULTS`: the default model's defaults; `defaults(model)` any model's (fal's own, used
  when a field is absent).
- `ENUMS` and `choices()`: the values each option takes for a model; a resolution only
  while it has an active price for that model.
- `GenerationOptionsSerializer`: the model and its options, which set the price and the
  frame; a quote reads only these.
- `GenerationRequestSerializer`: a create: the options, a prompt, the model's images
  (each an upload or a public https URL: one `image`, a first and a last frame, or up to
  three references), its optional arguments and an optional callback URL.
- `validate_request` / `validate_params`: the service-level entry points. Every field's
  errors come at once, as `ValidationFailed(fields=...)`.

The rules about things from outside live in their own modules and are only called here:
the uploaded image (`generations.validation.check_image_file`), public addresses
(`veoproject.public_urls`) and callback URLs (`generations.callbacks`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final, Literal, TypedDict
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import models
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField, empty

from generations import catalogue, pricing
from generations.callbacks import CallbackUrlRefused, check_callback_url
from generations.models import AspectRatio, Duration, Resolution
from generations.pricing import Quote, Rates
from generations.validation import MIN_IMAGE_SIDE, check_image_file
from veoproject.exceptions import ValidationFailed
from veoproject.public_urls import check_public_url
from veoproject.serializer_fields import FieldsBuiltOnce

OptionName = Literal["aspect_ratio", "duration", "resolution"]


class Defaults(TypedDict):
    aspect_ratio: str
    duration: str
    resolution: str
    generate_audio: bool


def defaults(model: str = catalogue.DEFAULT_MODEL) -> Defaults:
    """What a request for `model` gets for an option it does not send (the catalogue's)."""
    entry = catalogue.get(model).defaults
    return {
        "aspect_ratio": entry["aspect_ratio"],
        "duration": entry["duration"],
        "resolution": entry["resolution"],
        "generate_audio": entry["generate_audio"],
    }


# The default model's defaults (fal-ai/veo3.1/image-to-video): today's clients get these.
DEFAULTS: Final[Defaults] = defaults()

# The values each option can ever take (the schema's enums, the portal's radio buttons).
ENUMS: Final[Mapping[OptionName, type[models.TextChoices]]] = MappingProxyType(
    {"aspect_ratio": AspectRatio, "duration": Duration, "resolution": Resolution}
)
# Their labels, read once (a TextChoices builds its `choices` list on every access).
_LABELS: Final[Mapping[OptionName, Mapping[str, str]]] = MappingProxyType(
    {name: MappingProxyType(dict(enum.choices)) for name, enum in ENUMS.items()}
)


def choices(
    name: OptionName, *, rates: Rates | None = None, model: str = catalogue.DEFAULT_MODEL
) -> list[tuple[str, str]]:
    """The (value, label) pairs option `name` takes now for `model`: its catalogue entry's
    values, and for the resolution only those with an active price for that model (read
    from `rates`, the model's, or from the database). The one place that says which
    values a request may take: the serializers and the portal's form ask it."""
    entry = catalogue.get(model)
    labels = _LABELS[name]
    values = list(entry.allowed(name))
    if name == "resolution":
        if rates is None:
            rates = pricing.active_rates(entry.endpoint)
        priced = set(pricing.orderable_resolutions(rates=rates))
        values = [value for value in values if value in priced]
    return [(value, labels[value]) for value in values]


def active_rates_by_model() -> dict[str, Rates]:
    """Every catalogued model's active rates, in one query."""
    return pricing.active_rates_by_endpoint(catalogue.IDS)


def offered_models(*, rates_by_model: Mapping[str, Rates] | None = None) -> list[catalogue.Model]:
    """The catalogued models with an active price, in catalogue order: what a request may
    name. A model staff have not priced (or switched off) is not offered."""
    if rates_by_model is None:
        rates_by_model = active_rates_by_model()
    return [
        model
        for model in catalogue.MODELS.values()
        if pricing.orderable_resolutions(rates=rates_by_model.get(model.id, {}))
    ]


def model_choices(*, rates_by_model: Mapping[str, Rates] | None = None) -> list[tuple[str, str]]:
    """(model id, label) of the offered models: the portal's picker."""
    return [(model.id, model.label) for model in offered_models(rates_by_model=rates_by_model)]


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
    # Since the catalogue; at their defaults they are left out of the fingerprint, so that
    # a key stored before still matches the same request.
    model: str = catalogue.DEFAULT_MODEL
    model_options: Mapping[str, Any] = field(default_factory=dict)
    input_urls: tuple[InputUrl, ...] = ()

    def fingerprint(self, image_digest: str = "") -> str:
        """What makes two requests "the same" for Idempotency-Key replays."""
        # What `dataclasses.asdict` gives, without its recursive deep copy.
        payload: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        payload["model_options"] = dict(self.model_options)
        payload["input_urls"] = [asdict(url) for url in self.input_urls]
        payload["image"] = image_digest
        if self.model == catalogue.DEFAULT_MODEL:
            del payload["model"]
        for name in ("model_options", "input_urls"):
            if not payload[name]:
                del payload[name]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class InputUrl:
    """An input image given as a public https URL, in one of the model's slots (fal's
    field: first_frame_url, last_frame_url or image_urls) at a position (references)."""

    slot: str
    position: int
    url: str


@dataclass(frozen=True)
class InputFile:
    """An uploaded input image in one of the model's slots (see InputUrl)."""

    slot: str
    position: int
    file: UploadedFile


@dataclass(frozen=True)
class ValidRequest:
    """A request that passed every rule: what to store and send to fal, and the uploaded
    image when the image came as a file. `quote_id` and `max_cost_credits` say what the
    client agreed to pay (`generations.quotes` decides); they are not part of the
    fingerprint."""

    params: GenerationParams
    image: UploadedFile | None
    quote_id: UUID | None = None
    max_cost_credits: int | None = None
    input_files: tuple[InputFile, ...] = ()  # the uploads of a multi-image model
    rates: Rates = field(default_factory=dict)  # the model's active rates, as validated


def _option(name: OptionName, help_text: str) -> serializers.CharField:
    """A string option, documented as its enum with the default model's default. It is
    checked against `choices()` for the chosen model (not a ChoiceField) so that the
    message can name the values that model allows now; an absent option gets the chosen
    model's default (`GenerationOptionsSerializer.validate`)."""

    @extend_schema_field(serializers.ChoiceField(choices=ENUMS[name].choices))
    class Option(serializers.CharField):
        def get_default(self) -> Any:
            raise SkipField()  # the chosen model's default, set in `validate`

    return Option(default=DEFAULTS[name], help_text=help_text)


@extend_schema_field(serializers.ChoiceField(choices=catalogue.IDS))
class _ModelField(serializers.CharField):
    pass


class GenerationOptionsSerializer(FieldsBuiltOnce, serializers.Serializer):
    """The model and its options: what sets the price (model, duration, resolution, audio)
    and the frame."""

    model = _ModelField(
        default=catalogue.DEFAULT_MODEL,
        help_text=f"fal's endpoint id of the model (GET /api/v1/models/ lists those offered, "
        f"with their options); default {catalogue.DEFAULT_MODEL}.",
    )
    aspect_ratio = _option(
        "aspect_ratio",
        f"{' or '.join(AspectRatio.values)} as the model allows (`auto`: from the image); "
        f"default the model's ({DEFAULTS['aspect_ratio']} for {catalogue.DEFAULT_MODEL}).",
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

    def validate_model(self, value: str) -> str:
        if self.chosen_model() is None:
            offered = [model.id for model in offered_models()]
            raise serializers.ValidationError(
                gettext("Choose a model: %(models)s.") % {"models": ", ".join(offered)}
            )
        return value

    def validate_aspect_ratio(self, value: str) -> str:
        return self._one_of("aspect_ratio", value)

    def validate_duration(self, value: str) -> str:
        return self._one_of("duration", value)

    def validate_resolution(self, value: str) -> str:
        return self._one_of("resolution", value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        model = self.chosen_model()
        assert model is not None  # validate_model refused it otherwise
        return {**defaults(model.id), **attrs, "model": model.id}

    def chosen_model(self) -> catalogue.Model | None:
        """The catalogue entry the request names (the default model when it names none),
        or None when it names one that is unknown or not offered (no active price)."""
        if not hasattr(self, "_chosen"):
            raw = self.fields["model"].get_value(getattr(self, "initial_data", {}))
            model_id = catalogue.DEFAULT_MODEL if raw is empty or raw == "" else raw
            entry = catalogue.MODELS.get(model_id) if isinstance(model_id, str) else None
            self._chosen = entry if entry is not None and self.model_rates(entry) else None
        return self._chosen

    def model_rates(self, model: catalogue.Model) -> Rates:
        """The active rates of `model`: the caller's (context `rates`, for the model the
        request names) or read once from the database."""
        given = self.context.get("rates")
        if given is not None:
            return given
        cached: dict[str, Rates] = self.__dict__.setdefault("_rates", {})
        if model.id not in cached:
            cached[model.id] = pricing.active_rates(model.endpoint)
        return cached[model.id]

    def _one_of(self, name: OptionName, value: str) -> str:
        model = self.chosen_model()
        if model is None:
            return value  # the model's own error says what to choose
        rates = self.model_rates(model)
        allowed = [allowed for allowed, _ in choices(name, rates=rates, model=model.id)]
        if value not in allowed:
            raise serializers.ValidationError(
                gettext("Choose a %(option)s: %(allowed)s.")
                % {"option": _OPTION_WORDS[name], "allowed": ", ".join(allowed)}
            )
        return value


class _OptionalBoolean(serializers.BooleanField):
    """A boolean a request may leave out (also a multipart form, where DRF would read an
    absent checkbox as false): absent means fal's own default."""

    default_empty_html = empty


# The single-image slots: (upload field, URL field = fal's field, what it is called).
_IMAGE_SLOTS: Final = (
    ("image", "image_url", pgettext_lazy("the image slot", "image")),
    ("first_frame", "first_frame_url", pgettext_lazy("the image slot", "first frame")),
    ("last_frame", "last_frame_url", pgettext_lazy("the image slot", "last frame")),
)
_MISSING = {"image": gettext_lazy("Upload an image or give an image URL.")}
_BOTH = {"image": gettext_lazy("Send either an image file or an image URL, not both.")}
# How "Choose a …" names each option (the API's words stay English: "Choose a duration").
_OPTION_WORDS = {
    "aspect_ratio": pgettext_lazy("choose a", "aspect ratio"),
    "duration": pgettext_lazy("choose a", "duration"),
    "resolution": pgettext_lazy("choose a", "resolution"),
}


# Unicode's control characters (category Cc: U+0000-001F, U+007F-009F) but tab and line
# breaks; and lone surrogates, which no UTF-8 text can carry.
_CONTROL_CHARACTERS: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATES: Final = re.compile("[\ud800-\udfff]")


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
    # The images of the models that take two or several (`catalogue.IMAGE_FIELDS`): each
    # an upload or a public https URL, held to the same rules as `image` / `image_url`.
    first_frame_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="First-last-frame models: a public https URL of the first frame. Give this "
        "or upload `first_frame`.",
    )
    first_frame = serializers.FileField(
        required=False, help_text="First-last-frame models, multipart only: the first frame."
    )
    last_frame_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="First-last-frame models: a public https URL of the last frame. Give this "
        "or upload `last_frame`.",
    )
    last_frame = serializers.FileField(
        required=False, help_text="First-last-frame models, multipart only: the last frame."
    )
    image_urls = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=f"Reference models: public https URLs of reference images; with "
        f"`reference_images`, 1 to {catalogue.MAX_REFERENCES} images in all.",
    )
    reference_images = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        help_text="Reference models, multipart only: reference image files (the field repeated).",
    )
    # The models' optional arguments (fal's names); a model that does not take one refuses
    # it. Absent ones are left to fal's defaults.
    negative_prompt = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="What the video should not show (models that take it).",
    )
    seed = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=catalogue.SEED_MAX,
        help_text="The same seed and request give a similar video (models that take it).",
    )
    auto_fix = _OptionalBoolean(
        required=False,
        allow_null=True,
        help_text="Let fal rewrite a prompt its content checks refuse (models that take it; "
        "fal's default per model, see GET /api/v1/models/).",
    )
    safety_tolerance = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text=f"fal's content moderation, {catalogue.SAFETY_TOLERANCES[0]} (strictest) "
        f"to {catalogue.SAFETY_TOLERANCES[-1]}; fal's default 4.",
    )
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Optional http(s) URL we POST the generation JSON to when it ends, signed "
        "with your webhook secret (header X-Veo-Signature). Must be a public address.",
    )

    def validate_prompt(self, prompt: str) -> str:
        if not prompt.strip():
            raise serializers.ValidationError(gettext("Describe the video you want."))
        if len(prompt) > settings.PROMPT_MAX_CHARS:
            raise serializers.ValidationError(
                gettext("Keep the prompt under %(limit)s characters (it has %(length)s).")
                % {"limit": settings.PROMPT_MAX_CHARS, "length": len(prompt)}
            )
        if _CONTROL_CHARACTERS.search(prompt):
            raise serializers.ValidationError(gettext("The prompt contains control characters."))
        if _SURROGATES.search(prompt):
            raise serializers.ValidationError(gettext("The prompt contains invalid characters."))
        return prompt

    def validate_image(self, image: UploadedFile) -> UploadedFile:
        check_image_file(image)
        return image

    def validate_image_url(self, url: str) -> str:
        return check_public_url(url, schemes=("https",)) if url else ""

    validate_first_frame = validate_last_frame = validate_image
    validate_first_frame_url = validate_last_frame_url = validate_image_url

    def validate_image_urls(self, urls: list[str]) -> list[str]:
        return [check_public_url(url, schemes=("https",)) for url in urls if url.strip()]

    def validate_reference_images(self, images: list[UploadedFile]) -> list[UploadedFile]:
        for image in images:
            check_image_file(image)
        return images

    def validate_negative_prompt(self, text: str) -> str:
        if text:
            self._takes("negative_prompt", "negative prompt")
            if len(text) > settings.PROMPT_MAX_CHARS:
                raise serializers.ValidationError(
                    gettext("Keep it under %(limit)s characters.")
                    % {"limit": settings.PROMPT_MAX_CHARS}
                )
        return text

    def validate_seed(self, seed: int | None) -> int | None:
        if seed is not None:
            self._takes("seed", "seed")
        return seed

    def validate_auto_fix(self, auto_fix: bool | None) -> bool | None:
        if auto_fix is not None:
            self._takes("auto_fix", "auto_fix")
        return auto_fix

    def validate_safety_tolerance(self, value: str) -> str:
        if value:
            self._takes("safety_tolerance", "safety tolerance")
            if value not in catalogue.SAFETY_TOLERANCES:
                allowed = ", ".join(catalogue.SAFETY_TOLERANCES)
                raise serializers.ValidationError(
                    gettext("Choose a safety tolerance: %(allowed)s.") % {"allowed": allowed}
                )
        return value

    def _takes(self, argument: str, words: str) -> None:
        model = self.chosen_model()
        if model is not None and argument not in model.optional_arguments:
            raise serializers.ValidationError(f"{model.id} takes no {words}.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        model = catalogue.get(attrs["model"])
        given = {name: attrs.get(name) for name in model.optional_arguments}
        attrs["model_options"] = {
            name: value for name, value in given.items() if value not in (None, "")
        }
        return attrs

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
            errors["prompt"] = [gettext("Describe the video you want.")]
        model = self.chosen_model()
        if model is None:
            return errors  # the model's own error says what to choose
        for upload, url, words in _IMAGE_SLOTS:
            gives_upload, gives_url = self._gives(upload, data), self._gives(url, data)
            if url not in model.image_fields:
                if gives_upload or gives_url:
                    name = upload if gives_upload else url
                    errors[name] = [
                        gettext("%(model)s takes no %(slot)s.") % {"model": model.id, "slot": words}
                    ]
                continue
            if gives_upload and gives_url:
                both = gettext("Send either a file or a URL for the %(slot)s, not both.") % {
                    "slot": words
                }
                errors[url] = [str(_BOTH.get(upload, both))]
            elif gives_upload is False and gives_url is False:
                missing = gettext("Upload the %(slot)s or give its URL.") % {"slot": words}
                errors[upload] = [str(_MISSING.get(upload, missing))]
        references = self._references_given(data)
        if "image_urls" not in model.image_fields:
            if references:
                errors["image_urls"] = [
                    gettext("%(model)s takes no reference images.") % {"model": model.id}
                ]
        elif references is not None and not 1 <= references <= model.max_references:
            errors["image_urls"] = [
                gettext(
                    "Give 1 to %(most)s reference images (uploads and URLs); this request has "
                    "%(count)s."
                )
                % {"most": model.max_references, "count": references}
            ]
        return errors

    def _references_given(self, data: Mapping[str, Any]) -> int | None:
        """How many reference images the request gives (uploads and URLs), as the fields
        read them; None when a field cannot read them: its own error says why."""
        count = 0
        for name in ("reference_images", "image_urls"):
            field = self.fields[name]
            try:
                count += len(field.run_validation(field.get_value(data)) or [])
            except SkipField:
                continue
            except (serializers.ValidationError, DjangoValidationError):
                return None
        return count

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


class GenerationCreateRequestSerializer(GenerationRequestSerializer):
    """A create: the request, and what the client agreed to pay (a quote, or a ceiling)."""

    quote_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="The `quote_id` of a quote of these options: the generation costs exactly "
        "the quoted price, even if prices changed since. Each quote pays for one generation "
        "until its `expires_at`. 409 `quote_expired` when it expired or was used, "
        "`quote_mismatch` when it quoted another model or other options (or is not yours).",
    )
    max_cost_credits = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Without a quote: the most you agree to pay. 409 `price_changed` (with "
        "the current `cost_credits`) when the price is higher now. Not with `quote_id`.",
    )


def _validated(
    serializer_class: type[serializers.Serializer], data: Any, rates: Rates | None
) -> dict[str, Any]:
    return _validated_with_rates(serializer_class, data, rates)[0]


def _validated_with_rates(
    serializer_class: type[serializers.Serializer], data: Any, rates: Rates | None
) -> tuple[dict[str, Any], Rates]:
    """The validated values, and the chosen model's active rates they were checked with."""
    serializer = serializer_class(data=data, context={"rates": rates})
    if not serializer.is_valid():
        raise ValidationFailed(
            fields={
                str(name): [str(message) for message in messages]
                for name, messages in serializer.errors.items()
            }
        )
    values = dict(serializer.validated_data)
    assert isinstance(serializer, GenerationOptionsSerializer)
    return values, serializer.model_rates(catalogue.get(values["model"]))


def validate_request(
    *,
    params: Mapping[str, Any],
    image_file: UploadedFile | None = None,
    rates: Rates | None = None,
) -> ValidRequest:
    """Check a create against every rule (ValidationFailed with every field's errors).
    `params` is the request's body (an API request's data, the portal form's values);
    `image_file`, when given, is its uploaded image. `rates` (from
    `pricing.active_rates` of the model the request names) decides which resolutions are
    orderable; without them they are read from the database (and returned, as
    `ValidRequest.rates`, to price the request from the same read)."""
    data = params if image_file is None else {**params, "image": image_file}
    values, model_rates = _validated_with_rates(GenerationCreateRequestSerializer, data, rates)
    urls, files = _inputs(values)
    checked = GenerationParams(
        prompt=values["prompt"],
        image_url=values.get("image_url", ""),
        aspect_ratio=values["aspect_ratio"],
        duration=values["duration"],
        resolution=values["resolution"],
        generate_audio=values["generate_audio"],
        callback_url=values.get("callback_url", ""),
        model=values["model"],
        model_options=values["model_options"],
        input_urls=urls,
    )
    return ValidRequest(
        params=checked,
        image=values.get("image"),
        quote_id=values.get("quote_id"),
        max_cost_credits=values.get("max_cost_credits"),
        input_files=files,
        rates=model_rates,
    )


def _inputs(values: Mapping[str, Any]) -> tuple[tuple[InputUrl, ...], tuple[InputFile, ...]]:
    """The checked images of a multi-image model, by slot and position: a frame's upload or
    URL; the references' uploads first, then their URLs."""
    model = catalogue.get(values["model"])
    urls: list[InputUrl] = []
    files: list[InputFile] = []
    for upload, url, _ in _IMAGE_SLOTS:
        if url not in model.image_fields or url == "image_url":
            continue  # one image_url is the generation's own image and image_url
        if values.get(upload):
            files.append(InputFile(slot=url, position=0, file=values[upload]))
        elif values.get(url):
            urls.append(InputUrl(slot=url, position=0, url=values[url]))
    if "image_urls" in model.image_fields:
        uploads = list(values.get("reference_images") or [])
        files += [InputFile(slot="image_urls", position=i, file=f) for i, f in enumerate(uploads)]
        urls += [
            InputUrl(slot="image_urls", position=len(uploads) + i, url=u)
            for i, u in enumerate(values.get("image_urls") or [])
        ]
    return tuple(urls), tuple(files)


def validate_params(
    *,
    params: Mapping[str, Any],
    image_file: UploadedFile | None = None,
    rates: Rates | None = None,
) -> GenerationParams:
    """`validate_request`, for callers that need only the checked parameters."""
    return validate_request(params=params, image_file=image_file, rates=rates).params


def priced_options(*, params: Mapping[str, Any]) -> tuple[dict[str, Any], Quote]:
    """The options a request names, checked and with their defaults, and their price:
    what a binding quote records (`generations.quotes`)."""
    values, rates = _validated_with_rates(GenerationOptionsSerializer, params, None)
    price = pricing.quote(
        duration=values["duration"],
        resolution=values["resolution"],
        generate_audio=values["generate_audio"],
        endpoint=catalogue.get(values["model"]).endpoint,
        rates=rates,
    )
    return values, price


def quote_request(*, params: Mapping[str, Any]) -> Quote:
    """The price of the options a request names (the API's quote), read by the same
    definition as a create; prompt, image and callback URL do not change a price and are
    not read. Raises ValidationFailed, or PricingError when no price matches."""
    return priced_options(params=params)[1]


def offers(*, rates_by_model: Mapping[str, Rates] | None = None) -> list[dict[str, Any]]:
    """The offered models as `GET /api/v1/models/` shows them: what each accepts (its
    images, the values of each option now, fal's defaults, its optional arguments) and its
    active prices per second, from one read of the prices."""
    if rates_by_model is None:
        rates_by_model = active_rates_by_model()
    described = []
    for model in offered_models(rates_by_model=rates_by_model):
        rates = rates_by_model[model.id]
        model_defaults = defaults(model.id)
        options: dict[str, Any] = {
            name: {
                "values": [value for value, _ in choices(name, rates=rates, model=model.id)],
                "default": model_defaults[name],
            }
            for name in ENUMS
        }
        options["generate_audio"] = {
            "values": sorted({audio for _, audio in rates}, reverse=True),
            "default": model_defaults["generate_audio"],
        }
        described.append(
            {
                "id": model.id,
                "name": model.label,
                "images": {
                    "kind": model.images,
                    "field_names": list(model.image_fields),
                    "max_references": model.max_references
                    if model.images == "references"
                    else None,
                },
                "options": options,
                "optional_arguments": {
                    "negative_prompt": model.negative_prompt,
                    "seed": model.seed,
                    "auto_fix": None if model.auto_fix is None else {"default": model.auto_fix},
                    "safety_tolerance": {
                        "values": list(catalogue.SAFETY_TOLERANCES),
                        "default": "4",
                    }
                    if model.safety_tolerance
                    else None,
                },
                "prices": [
                    {"resolution": resolution, "generate_audio": audio, "credits_per_second": rate}
                    for (resolution, audio), rate in sorted(
                        rates.items(),
                        key=lambda item: (Resolution.values.index(item[0][0]), not item[0][1]),
                    )
                ],
                "source_url": model.source_url,
            }
        )
    return described
