"""API shapes for generations.

Input: a create's and a quote's body are the one request definition
(`generations.requests`); the classes here give them their names in the OpenAPI schema.
Output: one generation JSON, also POSTed to callback URLs.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generations import estimates, states, wording
from generations.models import Generation
from generations.requests import GenerationRequestSerializer


def absolute_url(path: str, request=None) -> str:
    """`path` made absolute: from the request when there is one, else from
    PUBLIC_BASE_URL (callbacks are built in a worker, with no request)."""
    if request is not None:
        return request.build_absolute_uri(path)
    return f"{settings.PUBLIC_BASE_URL}{path}" if settings.PUBLIC_BASE_URL else path


class GenerationCreateSerializer(GenerationRequestSerializer):
    # A create's body: the request definition under its name in the schema (its
    # description is the definition's docstring).
    pass


class QuoteRequestSerializer(GenerationRequestSerializer):
    """Same fields as a create; prompt and image are accepted and ignored."""


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ModerationSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Generation.Moderation.values)
    reason = serializers.CharField(allow_null=True)


class GenerationListSerializer(serializers.ListSerializer):
    """A page of generations: their estimates are read once for the whole page."""

    def to_representation(self, data):
        generations = list(data.all() if hasattr(data, "all") else data)
        self.child.page_estimates = estimates.for_generations(generations)  # type: ignore[union-attr]
        return super().to_representation(generations)


class GenerationSerializer(serializers.ModelSerializer):
    """A generation as the API and callbacks show it."""

    # Set by GenerationListSerializer for a page; a single generation reads its own.
    page_estimates: dict | None = None

    status = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    video_url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    moderation = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()
    callback_url = serializers.SerializerMethodField()
    estimated_ready_at = serializers.SerializerMethodField(
        help_text="When the video will probably be ready, from how long similar videos took "
        "lately and the work ahead of it; null once it is final."
    )

    class Meta:
        model = Generation
        list_serializer_class = GenerationListSerializer
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
            "estimated_ready_at",
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
        reason = wording.failure_reason(generation)
        return {
            "code": generation.error_code or "failed",
            # Plain words and advice; the upstream details stay with staff (the admin).
            "message": str(reason) if reason else generation.error_message or "It failed.",
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

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_estimated_ready_at(self, generation: Generation) -> str | None:
        if self.page_estimates is not None:
            estimate = self.page_estimates.get(generation.pk)
            ready_at = estimate.ready_at if estimate else None
        else:
            ready_at = estimates.estimated_ready_at(generation)
        return serializers.DateTimeField().to_representation(ready_at) if ready_at else None


class QuoteSerializer(serializers.Serializer):
    cost_credits = serializers.IntegerField()
    breakdown = serializers.DictField(
        help_text="seconds, credits_per_second, resolution, generate_audio, endpoint."
    )
