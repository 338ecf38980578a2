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
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from generations import catalogue
from generations.images import STORED_FORMATS
from generations.models import AspectRatio, Resolution
from generations.requests import DEFAULTS, choices, defaults, model_choices
from generations.validation import MIN_IMAGE_SIDE

# What the file chooser offers: the formats the server accepts (generations/images.py).
IMAGE_ACCEPT = ",".join(content_type for _, content_type in STORED_FORMATS.values())
_KEY_RE = re.compile(r"^portal:[0-9a-f]{32}$")


def new_form_key() -> str:
    """An Idempotency-Key for one rendering of the create form: a double-click or a
    resubmitted POST returns the first generation instead of charging twice."""
    return f"portal:{uuid.uuid4().hex}"


def _resolution_choices(model: str = catalogue.DEFAULT_MODEL) -> list[tuple[str, str]]:
    # With no active price at all the form still offers the default (accept explains).
    default = Resolution(defaults(model)["resolution"])
    return choices("resolution", model=model) or [(default.value, default.label)]


def _model_choices() -> list[tuple[str, str]]:
    # With no model priced at all the form still offers the default (accept explains).
    default = catalogue.get(catalogue.DEFAULT_MODEL)
    return model_choices() or [(default.id, default.label)]


class OptionsForm(forms.Form):
    """The model and the options that set the price (and the aspect ratio, which does
    not). The options' choices and initial values are the chosen model's: the bound
    `model`, else the initial one, else the default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.model_entry = catalogue.get(self._chosen_model_id())
        model_id = self.model_entry.id
        for name in ("aspect_ratio", "duration"):
            field = cast(forms.ChoiceField, self.fields[name])
            field.choices = choices(name, model=model_id)
        resolution = cast(forms.ChoiceField, self.fields["resolution"])
        resolution.choices = _resolution_choices(model_id)
        for name, value in defaults(model_id).items():  # the form's `initial` wins
            self.fields[name].initial = value

    def _chosen_model_id(self) -> str:
        wanted = (
            self.data.get(self.add_prefix("model")) if self.is_bound else self.initial.get("model")
        )
        return str(wanted) if wanted in catalogue.MODELS else catalogue.DEFAULT_MODEL

    model = forms.ChoiceField(
        label=_("Model"),
        choices=_model_choices,
        initial=catalogue.DEFAULT_MODEL,
        required=False,
    )

    aspect_ratio = forms.ChoiceField(
        label=_("Aspect ratio"),
        choices=partial(choices, "aspect_ratio"),
        initial=DEFAULTS["aspect_ratio"],
        widget=forms.RadioSelect,
    )
    duration = forms.ChoiceField(
        label=_("Duration"),
        choices=partial(choices, "duration"),
        initial=DEFAULTS["duration"],
        widget=forms.RadioSelect,
    )
    # Read at each rendering: a resolution is offered only while it has an active price.
    resolution = forms.ChoiceField(
        label=_("Resolution"),
        choices=_resolution_choices,
        initial=DEFAULTS["resolution"],
        widget=forms.RadioSelect,
    )
    generate_audio = forms.BooleanField(
        label=_("Generate audio"),
        required=False,
        initial=DEFAULTS["generate_audio"],
        help_text=_("Dialogue, sound effects and ambience. Without audio the video costs half."),
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files under one name (the reference images)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(file, initial) for file in files]


def _image_input() -> forms.ClearableFileInput:
    return forms.ClearableFileInput(attrs={"accept": IMAGE_ACCEPT})


def _url_input() -> forms.URLInput:
    return forms.URLInput(attrs={"placeholder": "https://example.com/still.jpg"})


class QuoteForm(OptionsForm):
    """The live price preview: like the create form, without image and prompt. An absent
    `generate_audio` means off (an unchecked checkbox), as in the create form."""

    aspect_ratio = forms.ChoiceField(choices=partial(choices, "aspect_ratio"), required=False)


class GenerationForm(OptionsForm):
    image = forms.FileField(
        label=_("Image"),
        required=False,
        help_text=format_lazy(
            _(
                "JPEG, PNG or WebP, {min_side}p or larger, ideally {shapes} (other shapes are "
                "cropped to fit)."
            ),
            min_side=MIN_IMAGE_SIDE,
            shapes=" / ".join(AspectRatio.values),
        ),
        widget=forms.ClearableFileInput(attrs={"accept": IMAGE_ACCEPT}),
    )
    image_url = forms.URLField(
        label=_("…or an image URL"),
        required=False,
        max_length=2048,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/still.jpg"}),
    )
    prompt = forms.CharField(
        label=_("Prompt"),
        strip=False,
        max_length=settings.PROMPT_MAX_CHARS,
        widget=forms.Textarea(
            attrs={
                "rows": 6,
                "data-counter": "prompt-counter",
                "placeholder": _(
                    "Slow dolly-in on the lighthouse as waves crash below; "
                    "golden-hour light, gulls calling, a calm narrator says: “Home.”"
                ),
            }
        ),
    )
    # The images of the models that take two or several (shown for the chosen model,
    # `templates/generations/_model_images.html`): each an upload or a URL.
    first_frame = forms.FileField(label=_("First frame"), required=False, widget=_image_input())
    first_frame_url = forms.URLField(
        label=_("…or its URL"),
        required=False,
        max_length=2048,
        assume_scheme="https",
        widget=_url_input(),
    )
    last_frame = forms.FileField(label=_("Last frame"), required=False, widget=_image_input())
    last_frame_url = forms.URLField(
        label=_("…or its URL"),
        required=False,
        max_length=2048,
        assume_scheme="https",
        widget=_url_input(),
    )
    reference_images = MultipleFileField(
        label=_("Reference images"),
        required=False,
        help_text=format_lazy(
            _("Up to {count} images of the people, objects or style to keep."),
            count=catalogue.MAX_REFERENCES,
        ),
        widget=MultipleFileInput(attrs={"accept": IMAGE_ACCEPT}),
    )
    image_urls = forms.CharField(
        label=_("…or their URLs, one a line"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    negative_prompt = forms.CharField(
        label=_("Leave out"),
        required=False,
        strip=False,
        max_length=settings.PROMPT_MAX_CHARS,
        help_text=_("What the video should not show."),
        widget=forms.TextInput(),
    )
    seed = forms.IntegerField(
        label=_("Seed"),
        required=False,
        min_value=0,
        max_value=catalogue.SEED_MAX,
        help_text=_("The same seed and settings give a similar video."),
    )
    idempotency_key = forms.CharField(required=False, widget=forms.HiddenInput)
    # Try again: the earlier generation whose stored image is used when no other is given.
    source = forms.UUIDField(required=False, widget=forms.HiddenInput)
    # The quote the price box showed (rendered there, not by the form): the create is
    # charged that price or refused (generations.quotes).
    quote_id = forms.CharField(required=False, widget=forms.HiddenInput)

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

    def clean_quote_id(self) -> str | None:
        # A mangled one is as good as none: the create is charged the price now.
        value = self.cleaned_data.get("quote_id") or ""
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return None

    def clean_idempotency_key(self) -> str | None:
        key = self.cleaned_data.get("idempotency_key") or ""
        return key if _KEY_RE.match(key) else None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        image, image_url = cleaned.get("image"), cleaned.get("image_url")
        # The other models' images are checked by accept (the one request definition).
        if self.model_entry.images == "image" and "image_url" not in self.errors:
            if not image and not image_url and not cleaned.get("source"):
                self.add_error("image", "Choose an image, or give the URL of one.")
            elif image and image_url:
                self.add_error("image_url", "Choose a file or give a URL, not both.")
        return cleaned

    def to_params(self) -> dict[str, Any]:
        """The request for `services.accept` (the image file goes beside it)."""
        data = self.cleaned_data
        params: dict[str, Any] = {
            "model": self.model_entry.id,
            "prompt": data["prompt"],
            "aspect_ratio": data["aspect_ratio"],
            "duration": data["duration"],
            "resolution": data["resolution"],
            "generate_audio": data["generate_audio"],
        }
        if data.get("image_url"):
            params["image_url"] = data["image_url"]
        # Only what the chosen model takes: a field left filled in from another model is
        # not sent.
        slots = {
            "first_last": ("first_frame", "first_frame_url", "last_frame", "last_frame_url"),
            "references": ("reference_images",),
        }
        for name in slots.get(self.model_entry.images, ()):
            if data.get(name):
                params[name] = data[name]
        if self.model_entry.images == "references" and data.get("image_urls"):
            params["image_urls"] = [u.strip() for u in data["image_urls"].splitlines() if u.strip()]
        for name in ("negative_prompt", "seed"):
            if name in self.model_entry.optional_arguments and data.get(name) not in (None, ""):
                params[name] = data[name]
        if data.get("quote_id"):
            params["quote_id"] = data["quote_id"]
        return params

    @property
    def frame_slots(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        """The first and last frame's (upload, URL) fields, for the template."""
        return [(self[name], self[f"{name}_url"]) for name in ("first_frame", "last_frame")]

    @property
    def reuses_stored_image(self) -> bool:
        """No image given, but an earlier generation's to use again (Try again)."""
        data = self.cleaned_data
        if self.model_entry.images != "image":
            return False  # the other models' images are not kept for Try again
        return bool(data.get("source")) and not data.get("image") and not data.get("image_url")

    def renew_key(self) -> None:
        """Give a re-rendered bound form a fresh key (its old one is spent)."""
        # A bound form's data is the request's QueryDict, which is immutable: use a copy.
        data = cast(QueryDict, self.data).copy()
        data[self.add_prefix("idempotency_key")] = new_form_key()
        self.data = data
