"""Portal forms for generations. They shape input into the params that
`generations.services.accept` validates (with the one request definition,
`generations.requests`) and acts on; their choices and initial values come from that
definition, and they hold no business rules."""

from __future__ import annotations

import re
import uuid
from functools import partial
from typing import Any, cast

from django import forms
from django.conf import settings
from django.http import QueryDict

from generations.images import STORED_FORMATS
from generations.models import AspectRatio, Resolution
from generations.requests import DEFAULTS, choices
from generations.validation import MIN_IMAGE_SIDE

# What the file chooser offers: the formats the server accepts (generations/images.py).
IMAGE_ACCEPT = ",".join(content_type for _, content_type in STORED_FORMATS.values())
_KEY_RE = re.compile(r"^portal:[0-9a-f]{32}$")


def new_form_key() -> str:
    """An Idempotency-Key for one rendering of the create form: a double-click or a
    resubmitted POST returns the first generation instead of charging twice."""
    return f"portal:{uuid.uuid4().hex}"


def _resolution_choices() -> list[tuple[str, str]]:
    # With no active price at all the form still offers the default (accept explains).
    default = Resolution(DEFAULTS["resolution"])
    return choices("resolution") or [(default.value, default.label)]


class OptionsForm(forms.Form):
    """The options that set the price (and the aspect ratio, which does not)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    aspect_ratio = forms.ChoiceField(
        label="Aspect ratio",
        choices=partial(choices, "aspect_ratio"),
        initial=DEFAULTS["aspect_ratio"],
        widget=forms.RadioSelect,
    )
    duration = forms.ChoiceField(
        choices=partial(choices, "duration"),
        initial=DEFAULTS["duration"],
        widget=forms.RadioSelect,
    )
    # Read at each rendering: a resolution is offered only while it has an active price.
    resolution = forms.ChoiceField(
        choices=_resolution_choices, initial=DEFAULTS["resolution"], widget=forms.RadioSelect
    )
    generate_audio = forms.BooleanField(
        label="Generate audio",
        required=False,
        initial=DEFAULTS["generate_audio"],
        help_text="Dialogue, sound effects and ambience. Without audio the video costs half.",
    )


class QuoteForm(OptionsForm):
    """The live price preview: like the create form, without image and prompt. An absent
    `generate_audio` means off (an unchecked checkbox), as in the create form."""

    aspect_ratio = forms.ChoiceField(choices=partial(choices, "aspect_ratio"), required=False)


class GenerationForm(OptionsForm):
    image = forms.FileField(
        label="Image",
        required=False,
        help_text=f"JPEG, PNG or WebP, {MIN_IMAGE_SIDE}p or larger, ideally "
        f"{' or '.join(AspectRatio.values)} (other shapes are cropped to fit).",
        widget=forms.ClearableFileInput(attrs={"accept": IMAGE_ACCEPT}),
    )
    image_url = forms.URLField(
        label="…or an image URL",
        required=False,
        max_length=2048,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/still.jpg"}),
    )
    prompt = forms.CharField(
        strip=False,
        max_length=settings.PROMPT_MAX_CHARS,
        widget=forms.Textarea(
            attrs={
                "rows": 6,
                "data-counter": "prompt-counter",
                "placeholder": "Slow dolly-in on the lighthouse as waves crash below; "
                "golden-hour light, gulls calling, a calm narrator says: “Home.”",
            }
        ),
    )
    idempotency_key = forms.CharField(required=False, widget=forms.HiddenInput)
    # Try again: the earlier generation whose stored image is used when no other is given.
    source = forms.UUIDField(required=False, widget=forms.HiddenInput)

    field_order = [
        "image",
        "image_url",
        "prompt",
        "aspect_ratio",
        "duration",
        "resolution",
        "generate_audio",
        "idempotency_key",
        "source",
    ]

    def clean_idempotency_key(self) -> str | None:
        key = self.cleaned_data.get("idempotency_key") or ""
        return key if _KEY_RE.match(key) else None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        image, image_url = cleaned.get("image"), cleaned.get("image_url")
        if "image_url" not in self.errors:
            if not image and not image_url and not cleaned.get("source"):
                self.add_error("image", "Choose an image, or give the URL of one.")
            elif image and image_url:
                self.add_error("image_url", "Choose a file or give a URL, not both.")
        return cleaned

    def to_params(self) -> dict[str, Any]:
        """The request for `services.accept` (the image file goes beside it)."""
        data = self.cleaned_data
        params: dict[str, Any] = {
            "prompt": data["prompt"],
            "aspect_ratio": data["aspect_ratio"],
            "duration": data["duration"],
            "resolution": data["resolution"],
            "generate_audio": data["generate_audio"],
        }
        if data.get("image_url"):
            params["image_url"] = data["image_url"]
        return params

    @property
    def reuses_stored_image(self) -> bool:
        """No image given, but an earlier generation's to use again (Try again)."""
        data = self.cleaned_data
        return bool(data.get("source")) and not data.get("image") and not data.get("image_url")

    def renew_key(self) -> None:
        """Give a re-rendered bound form a fresh key (its old one is spent)."""
        # A bound form's data is the request's QueryDict, which is immutable: use a copy.
        data = cast(QueryDict, self.data).copy()
        data[self.add_prefix("idempotency_key")] = new_form_key()
        self.data = data
