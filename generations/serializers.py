"""API shapes for generations.

Input serializers only parse and shape types (multipart sends booleans as strings); the
rules (choices, URLs, the image itself, prices) live in `generations.validation` and
`generations.services`, shared with the portal. Output is one generation JSON, also POSTed
to callback URLs.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generations import states
from generations.models import AspectRatio, Duration, Generation, Resolution

FAL_DEFAULTS = "Default as fal's: 16:9, 8s, 720p, with audio."


def absolute_url(path: str, request=None) -> str:
    """`path` made absolute: from the request when there is one, else from
    PUBLIC_BASE_URL (callbacks are built in a worker, with no request)."""
    if request is not None:
        return request.build_absolute_uri(path)
    return f"{settings.PUBLIC_BASE_URL}{path}" if settings.PUBLIC_BASE_URL else path


def _enum(choices: list[tuple[str, str]], description: str) -> serializers.CharField:
    """A string field documented as an enum; the value is checked by the service."""

    @extend_schema_field(serializers.ChoiceField(choices=choices))
    class EnumField(serializers.CharField):
        pass

    return EnumField(required=False, help_text=description)


class GenerationOptionsSerializer(serializers.Serializer):
    """The options that set the price."""

    aspect_ratio = _enum(AspectRatio.choices, "16:9 (landscape) or 9:16 (portrait); default 16:9.")
    duration = _enum(Duration.choices, "Video length; default 8s.")
    resolution = _enum(
        Resolution.choices, "Default 720p; only resolutions with an active price can be ordered."
    )
    generate_audio = serializers.BooleanField(
        required=False,
        help_text="Dialogue, effects and ambience; default true. Without audio it costs half. "
        "Multipart forms may send true/false, 1/0, on/off.",
    )

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        # BooleanField fills in False when a form omits it; an absent field must mean
        # "fal's default" (true) instead, so keep only what was sent.
        if hasattr(data, "__contains__") and "generate_audio" not in data:
            values.pop("generate_audio", None)
        return values


class QuoteRequestSerializer(GenerationOptionsSerializer):
    """Same fields as a create; prompt and image are accepted and ignored."""

    prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    image_url = serializers.CharField(required=False, allow_blank=True)
    image = serializers.FileField(required=False, help_text="Ignored by the quote.")
    callback_url = serializers.CharField(required=False, allow_blank=True)

    def validate_aspect_ratio(self, value: str) -> str:
        # It does not change the price, but a quote for an impossible order would mislead.
        if value and value not in AspectRatio.values:
            raise serializers.ValidationError(f"Choose one of {', '.join(AspectRatio.values)}.")
        return value


class GenerationCreateSerializer(GenerationOptionsSerializer):
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
        help_text="A public https URL of the first frame (720p or more, 16:9 or 9:16). "
        "Give this or upload `image` (multipart), not both.",
    )
    image = serializers.FileField(
        required=False,
        help_text="multipart/form-data only: a JPEG, PNG or WebP file (720p or more).",
    )
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Optional http(s) URL we POST the generation JSON to when it ends, signed "
        "with your webhook secret (header X-Veo-Signature). Must be a public address.",
    )

    def validate_callback_url(self, value: str) -> str:
        from generations.callbacks import CallbackUrlRefused, check_callback_url

        if value.strip():
            try:
                check_callback_url(value.strip(), resolve=True)
            except CallbackUrlRefused as exc:
                raise serializers.ValidationError(str(exc)) from None
        return value


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ModerationSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Generation.Moderation.values)
    reason = serializers.CharField(allow_null=True)


class GenerationSerializer(serializers.ModelSerializer):
    """A generation as the API and callbacks show it."""

    status = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    video_url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    moderation = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()
    callback_url = serializers.SerializerMethodField()

    class Meta:
        model = Generation
        fields = [
            "id",
            "status",
            "prompt",
            "image_url",
            "aspect_ratio",
            "duration",
            "resolution",
            "generate_audio",
            "cost_credits",
            "video_url",
            "error",
            "moderation",
            "callback_url",
            "queue_position",
            "created_at",
            "started_at",
            "completed_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "cost_credits": {"help_text": "Quoted and held at acceptance; spent on success."},
        }

    @extend_schema_field({"type": "string", "enum": list(states.PUBLIC_STATUSES)})
    def get_status(self, generation: Generation) -> str:
        return generation.public_status

    @extend_schema_field({"type": "string", "format": "uri"})
    def get_image_url(self, generation: Generation) -> str:
        if generation.image:
            return absolute_url(
                reverse("generation-image", args=[generation.pk]), self.context.get("request")
            )
        return generation.image_url

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_video_url(self, generation: Generation) -> str | None:
        """The private download URL: fetch it with the same credentials as the API."""
        if not generation.has_playable_video:
            return None
        return absolute_url(
            reverse("generation-video", args=[generation.pk]), self.context.get("request")
        )

    @extend_schema_field(GenerationErrorSerializer(allow_null=True))
    def get_error(self, generation: Generation) -> dict | None:
        if not (generation.error_code or generation.error_message):
            return None
        return {
            "code": generation.error_code or "failed",
            "message": generation.error_message or "The generation failed.",
        }

    @extend_schema_field(ModerationSerializer)
    def get_moderation(self, generation: Generation) -> dict:
        if generation.is_hidden:
            return {
                "state": generation.moderation_state,
                "reason": generation.moderation_reason or "Removed by moderation.",
            }
        return {"state": generation.moderation_state, "reason": None}

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_callback_url(self, generation: Generation) -> str | None:
        """Where the final JSON is POSTed, or null."""
        return generation.callback_url or None

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_queue_position(self, generation: Generation) -> int | None:
        """fal's queue position while queued (0 = next), else null."""
        if not generation.is_queued:
            return None
        return generation.fal_queue_position


class QuoteSerializer(serializers.Serializer):
    cost_credits = serializers.IntegerField()
    breakdown = serializers.DictField(
        help_text="seconds, credits_per_second, resolution, generate_audio, endpoint."
    )
