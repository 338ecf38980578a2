"""The Veo 3.1 family on fal as a catalogue: what each model accepts, as code.

One entry per model, keyed by fal's endpoint id (the `model` a request names): which
images it takes (none, one `image_url`, `first_frame_url` + `last_frame_url`, or
`image_urls` references; fal's own field names), its durations, resolutions and aspect
ratios, its optional arguments, fal's defaults, fal's list price and the page each was read
from. Which models are offered and at what price is data (`PricingRule`, edited by staff):
a model with no active price is not offered (`generations.requests.offered_models`).

This module is plain Python (no ORM): `generations.models`, the requests, the submit
(`arguments`) and the simulated backend (`fal_input_errors`) all read it.

Sources (read 2026-12 with the search tool; fal's llms.txt pages list the input schema and
the price): see each entry's `source_url`. Where a page did not show a value, the entry
says so beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

ImageKind = Literal["none", "image", "first_last", "references"]

# fal's image fields, by kind. A request names its URLs with the same words; an upload
# takes the name without `_url(s)` (`image`, `first_frame`, `last_frame`, `reference_images`).
IMAGE_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "none": (),
    "image": ("image_url",),
    "first_last": ("first_frame_url", "last_frame_url"),
    "references": ("image_urls",),
}

SAFETY_TOLERANCES: Final = ("1", "2", "3", "4", "5", "6")
SEED_MAX: Final = 2**32 - 1  # Veo's seeds are unsigned 32-bit integers
MAX_REFERENCES: Final = 3  # Veo 3.1 takes up to three reference ("ingredient") images

STANDARD_PRICE: Final = {  # USD per second: (resolution, audio) -> price
    ("720p", False): Decimal("0.20"),
    ("720p", True): Decimal("0.40"),
    ("1080p", False): Decimal("0.20"),
    ("1080p", True): Decimal("0.40"),
    ("4k", False): Decimal("0.40"),
    ("4k", True): Decimal("0.60"),
}
FAST_PRICE: Final = {
    ("720p", False): Decimal("0.10"),
    ("720p", True): Decimal("0.15"),
    ("1080p", False): Decimal("0.10"),
    ("1080p", True): Decimal("0.15"),
    ("4k", False): Decimal("0.30"),
    ("4k", True): Decimal("0.35"),
}


@dataclass(frozen=True)
class Model:
    """One fal endpoint and what it accepts. Tuples are in the order a picker shows them."""

    id: str  # fal's endpoint id: what a request's `model` names and where it is submitted
    label: str
    images: ImageKind
    aspect_ratios: tuple[str, ...]
    durations: tuple[str, ...]
    resolutions: tuple[str, ...]
    defaults: Mapping[str, Any]  # aspect_ratio, duration, resolution, generate_audio
    negative_prompt: bool  # takes fal's optional `negative_prompt`
    seed: bool  # takes fal's optional `seed`
    auto_fix: bool | None  # fal's default for `auto_fix`; None: not accepted
    safety_tolerance: bool  # takes fal's optional `safety_tolerance` ("1".."6", default "4")
    usd_per_second: Mapping[tuple[str, bool], Decimal]  # fal's list price
    source_url: str
    notes: str = ""
    max_references: int = field(default=MAX_REFERENCES)

    @property
    def endpoint(self) -> str:
        return self.id

    @property
    def image_fields(self) -> tuple[str, ...]:
        return IMAGE_FIELDS[self.images]

    @property
    def optional_arguments(self) -> tuple[str, ...]:
        """The optional arguments besides the options every model takes, in fal's words."""
        return tuple(
            name
            for name, taken in (
                ("negative_prompt", self.negative_prompt),
                ("seed", self.seed),
                ("auto_fix", self.auto_fix is not None),
                ("safety_tolerance", self.safety_tolerance),
            )
            if taken
        )

    def allowed(self, option: str) -> tuple[str, ...]:
        return {
            "aspect_ratio": self.aspect_ratios,
            "duration": self.durations,
            "resolution": self.resolutions,
        }[option]

    def arguments(
        self,
        *,
        prompt: str,
        aspect_ratio: str,
        duration: str,
        resolution: str,
        generate_audio: bool,
        images: Mapping[str, str | list[str]],
        options: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The JSON fal's endpoint takes: every option explicit (fal's defaults change),
        the images under fal's field names, and the optional arguments the request gave
        (absent ones are left to fal's defaults)."""
        missing = [name for name in self.image_fields if not images.get(name)]
        if missing:
            raise ValueError(f"{self.id} needs {', '.join(missing)}")
        arguments: dict[str, Any] = {
            "prompt": prompt,
            **{name: images[name] for name in self.image_fields},
            "aspect_ratio": aspect_ratio,
            "duration": duration,
            "resolution": resolution,
            "generate_audio": bool(generate_audio),
        }
        arguments.update(
            {name: options[name] for name in self.optional_arguments if name in options}
        )
        return arguments


def _veo(
    id: str,
    label: str,
    prices: Mapping,
    source: str,
    *,
    images: ImageKind,
    aspect_default: str = "16:9",
    notes: str = "",
) -> Model:
    """The shape most of the family shares (their pages list the same fields): 4-8 s,
    720p to 4k, audio on by default, negative prompt, seed and safety tolerance; `auto`
    aspect ratio where an image sets the frame, `auto_fix` only on text to video."""
    return Model(
        id=id,
        label=label,
        images=images,
        aspect_ratios=("16:9", "9:16") if images == "none" else ("auto", "16:9", "9:16"),
        durations=("4s", "6s", "8s"),
        resolutions=("720p", "1080p", "4k"),
        defaults={
            "aspect_ratio": aspect_default,
            "duration": "8s",
            "resolution": "720p",
            "generate_audio": True,
        },
        negative_prompt=True,
        seed=True,
        auto_fix=images == "none",
        safety_tolerance=True,
        usd_per_second=prices,
        source_url=source,
        notes=notes,
    )


DEFAULT_MODEL: Final = "fal-ai/veo3.1/image-to-video"

_FAL = "https://fal.ai/models/"
MODELS: Final[Mapping[str, Model]] = {
    model.id: model
    for model in (
        _veo(
            "fal-ai/veo3.1/image-to-video",
            "Veo 3.1 image to video",
            STANDARD_PRICE,
            "https://fal.ai/docs/model-api-reference/video-generation-api/veo3.1-image-to-video",
            images="image",
            # fal's default is "auto"; ours stays 16:9, as before the catalogue, so that
            # today's clients get the same video for the same request.
            aspect_default="16:9",
            notes="Price not stated on fal's page for this endpoint; fal prices it as "
            "fal-ai/veo3.1 (see FalPrice, migration 0006).",
        ),
        _veo(
            "fal-ai/veo3.1",
            "Veo 3.1 text to video",
            STANDARD_PRICE,
            _FAL + "fal-ai/veo3.1/llms.txt",
            images="none",
        ),
        _veo(
            "fal-ai/veo3.1/fast",
            "Veo 3.1 Fast text to video",
            FAST_PRICE,
            "https://fal.ai/docs/model-api-reference/video-generation-api/veo3.1-fast",
            images="none",
            notes="Price as fal-ai/veo3.1/fast/first-last-frame-to-video (the fast tier).",
        ),
        _veo(
            "fal-ai/veo3.1/fast/image-to-video",
            "Veo 3.1 Fast image to video",
            FAST_PRICE,
            _FAL + "fal-ai/veo3.1/fast/image-to-video",
            images="image",
            aspect_default="auto",
            notes="Schema as fal-ai/veo3.1/image-to-video; price as the fast tier.",
        ),
        _veo(
            "fal-ai/veo3.1/first-last-frame-to-video",
            "Veo 3.1 first and last frame",
            {key: price for key, price in STANDARD_PRICE.items() if key[0] != "4k"},
            "https://fal.ai/docs/model-api-reference/video-generation-api/"
            "veo3.1-first-last-frame-to-video",
            images="first_last",
            aspect_default="auto",
            notes="No fal page states its price; the standard tier's 720p/1080p rates "
            "(third party: fairstack.ai); no 4k price known, so 4k is not seeded.",
        ),
        _veo(
            "fal-ai/veo3.1/fast/first-last-frame-to-video",
            "Veo 3.1 Fast first and last frame",
            FAST_PRICE,
            _FAL + "fal-ai/veo3.1/fast/first-last-frame-to-video/llms.txt",
            images="first_last",
            aspect_default="auto",
        ),
        Model(
            id="fal-ai/veo3.1/reference-to-video",
            label="Veo 3.1 from reference images",
            images="references",
            aspect_ratios=("16:9", "9:16"),
            # fal types `duration` as a string whose only listed value is its default.
            durations=("8s",),
            resolutions=("720p", "1080p", "4k"),
            defaults={
                "aspect_ratio": "16:9",
                "duration": "8s",
                "resolution": "720p",
                "generate_audio": True,
            },
            negative_prompt=False,
            seed=False,
            auto_fix=False,
            safety_tolerance=True,
            usd_per_second=STANDARD_PRICE,
            source_url=_FAL + "fal-ai/veo3.1/reference-to-video/llms.txt",
        ),
    )
}

IDS: Final = tuple(MODELS)


def get(model_id: str) -> Model:
    """The catalogue entry for `model_id`; KeyError for a model we do not know."""
    return MODELS[model_id]


def fal_input_errors(endpoint: str, arguments: Mapping[str, Any]) -> list[str]:
    """What fal would refuse in `arguments` for `endpoint` (its 422 at the result), in
    plain words; [] when fal would take them. The simulated backend asks this."""
    model = MODELS.get(endpoint)
    if model is None:
        return [f"Unknown endpoint {endpoint}."]
    errors: list[str] = []
    if not isinstance(arguments.get("prompt"), str):
        errors.append("prompt: Field required")
    for name in model.image_fields:
        value = arguments.get(name)
        if name == "image_urls":
            if not (isinstance(value, list) and value and all(isinstance(u, str) for u in value)):
                errors.append("image_urls: Input should be a valid list of strings")
        elif not isinstance(value, str) or not value:
            errors.append(f"{name}: Field required")
    for option in ("aspect_ratio", "duration", "resolution"):
        if option in arguments and arguments[option] not in model.allowed(option):
            errors.append(f"{option}: Input should be {', '.join(model.allowed(option))}")
    known = {
        "prompt",
        "aspect_ratio",
        "duration",
        "resolution",
        "generate_audio",
        *model.image_fields,
        *model.optional_arguments,
    }
    errors.extend(
        f"{name}: Extra inputs are not permitted" for name in arguments if name not in known
    )
    if "safety_tolerance" in arguments and arguments["safety_tolerance"] not in SAFETY_TOLERANCES:
        errors.append(f"safety_tolerance: Input should be {', '.join(SAFETY_TOLERANCES)}")
    return errors


# The models that take one `image_url` (the Generation's own image and image_url fields).
SINGLE_IMAGE_MODELS: Final = tuple(model.id for model in MODELS.values() if model.images == "image")
