"""API shapes for generations.

Input: a create's and a quote's body are the one request definition
(`generations.requests`); the classes here give them their names in the OpenAPI schema.
Output: one generation JSON, also POSTed to callback URLs.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from generations import estimates, media, states, wording
from generations.models import Generation
from generations.requests import GenerationCreateRequestSerializer, GenerationRequestSerializer
from veoproject import site_urls
from veoproject.serializer_fields import FieldsBuiltOnce

# A URL of ours in the JSON, as the one rule makes it for a client: PUBLIC_BASE_URL, else
# the request's allowed host, else (a callback, built in a worker) the bare path.
absolute_url = site_urls.for_client


class GenerationCreateSerializer(GenerationCreateRequestSerializer):
    # A create's body: the request definition under its name in the schema (its
    # description is the definition's docstring).
    pass


class QuoteRequestSerializer(GenerationRequestSerializer):
    """Same fields as a create; prompt and image are accepted and ignored."""


class LineItemSerializer(serializers.Serializer):
    """One line of a price: `seconds` x `credits_per_second` = `credits` for what one
    choice adds (generations.pricing.LineItem). The lines add up to the price."""

    item = serializers.ChoiceField(choices=["model", "resolution", "audio"])
    value = serializers.JSONField(
        help_text="The model's fal endpoint id, the resolution, or true/false for audio."
    )
    seconds = serializers.IntegerField()
    credits_per_second = serializers.IntegerField()
    credits = serializers.IntegerField()


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


# How the estimate's time is written: as every DateTimeField of the answer writes its own.
_DATETIME = serializers.DateTimeField()


class GenerationSerializer(FieldsBuiltOnce, serializers.ModelSerializer):
    """A generation as the API and callbacks show it."""

    # Set by GenerationListSerializer for a page; a single generation reads its own.
    page_estimates: dict | None = None

    status = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    input_images = serializers.SerializerMethodField()
    video_url = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    moderation = serializers.SerializerMethodField()
    queue_position = serializers.SerializerMethodField()
    callback_url = serializers.SerializerMethodField()
    estimated_ready_at = serializers.SerializerMethodField(
        help_text="When the video will probably be ready, from how long similar videos took "
        "lately and the work ahead of it; null once it is final."
    )
    price_breakdown = serializers.SerializerMethodField(
        help_text="`cost_credits` as line items (model, resolution, audio: seconds x rate), "
        "as priced at acceptance; null for generations accepted before they were recorded."
    )

    class Meta:
        model = Generation
        list_serializer_class = GenerationListSerializer
        fields = [
            "id",
            "status",
            "prompt",
            "model",
            "image_url",
            "input_images",
            "aspect_ratio",
            "duration",
            "resolution",
            "generate_audio",
            "cost_credits",
            "price_breakdown",
            "quote_id",
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
            "model": {"help_text": "The model (fal's endpoint id) it was made with."},
            "cost_credits": {"help_text": "Quoted and held at acceptance; spent on success."},
        }

    @extend_schema_field({"type": "string", "enum": list(states.PUBLIC_STATUSES)})
    def get_status(self, generation: Generation) -> str:
        return generation.public_status

    @extend_schema_field({"type": "string", "format": "uri", "nullable": True})
    def get_image_url(self, generation: Generation) -> str | None:
        """The image of a model that takes one; null for the others (see input_images)."""
        if generation.image:
            return absolute_url(
                reverse("generation-image", args=[generation.pk]), self.context.get("request")
            )
        return generation.image_url or None

    @extend_schema_field(
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "position": {"type": "integer"},
                    "url": {"type": "string", "format": "uri"},
                },
            },
        }
    )
    def get_input_images(self, generation: Generation) -> list[dict]:
        """The images of a model that takes several, under fal's field names (first_frame_url,
        last_frame_url, image_urls): the URL given, or ours for an upload (private, like
        video_url: fetch it with the same credentials)."""
        request = self.context.get("request")
        return [
            {
                "field": image.slot,
                "position": image.position,
                "url": absolute_url(path, request) if path else image.image_url,
            }
            for image, path in media.input_image_paths(generation)
        ]

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
        """The place in line while queued (0 = next): ours while it waits for one of
        fal's slots (in the fair order), fal's once it is there; else null."""
        if not generation.is_queued:
            return None
        estimate = self._estimate(generation) if generation.is_waiting else None
        return estimates.place_in_line(generation, estimate)

    @extend_schema_field(LineItemSerializer(many=True, allow_null=True))
    def get_price_breakdown(self, generation: Generation) -> list[dict] | None:
        return generation.price_breakdown or None

    @extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
    def get_estimated_ready_at(self, generation: Generation) -> str | None:
        estimate = self._estimate(generation)
        ready_at = estimate.ready_at if estimate else None
        return _DATETIME.to_representation(ready_at) if ready_at else None

    def _estimate(self, generation: Generation) -> estimates.Estimate | None:
        """The page's estimate, or this generation's own, read once."""
        if self.page_estimates is not None:
            return self.page_estimates.get(generation.pk)
        own: dict = self.__dict__.setdefault("_own_estimates", {})
        if generation.pk not in own:
            own[generation.pk] = estimates.for_generations([generation]).get(generation.pk)
        return own[generation.pk]


class QuoteSerializer(serializers.Serializer):
    cost_credits = serializers.IntegerField()
    breakdown = serializers.DictField(
        help_text="seconds, credits_per_second, resolution, generate_audio, endpoint."
    )
    price_breakdown = LineItemSerializer(many=True, help_text="The price as line items.")
    quote_id = serializers.UUIDField(
        help_text="Send it with a create of the same model and options to be charged "
        "exactly `cost_credits`; it pays for one generation."
    )
    expires_at = serializers.DateTimeField(
        help_text="Until when the quote binds (QUOTE_TTL_SECONDS after it was made)."
    )


class ModelOptionValuesSerializer(serializers.Serializer):
    values = serializers.ListField(child=serializers.JSONField())
    default = serializers.JSONField()


class ModelImagesSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["none", "image", "first_last", "references"])
    field_names = serializers.ListField(
        child=serializers.CharField(),
        help_text="fal's field names: send URLs under them (`image_urls` a list); uploads "
        "go as `image`, `first_frame`, `last_frame`, `reference_images`.",
    )
    max_references = serializers.IntegerField(allow_null=True)


class ModelOptionsSerializer(serializers.Serializer):
    aspect_ratio = ModelOptionValuesSerializer()
    duration = ModelOptionValuesSerializer()
    resolution = ModelOptionValuesSerializer(help_text="Only resolutions with an active price.")
    generate_audio = ModelOptionValuesSerializer()


class ModelAutoFixSerializer(serializers.Serializer):
    default = serializers.BooleanField()


class ModelOptionalArgumentsSerializer(serializers.Serializer):
    negative_prompt = serializers.BooleanField()
    seed = serializers.BooleanField()
    auto_fix = ModelAutoFixSerializer(allow_null=True)
    safety_tolerance = ModelOptionValuesSerializer(allow_null=True)


class ModelPriceSerializer(serializers.Serializer):
    resolution = serializers.CharField()
    generate_audio = serializers.BooleanField()
    credits_per_second = serializers.IntegerField()


class CatalogueModelSerializer(serializers.Serializer):
    """An offered model: what a create or quote naming it may send, and its prices."""

    id = serializers.CharField(help_text="fal's endpoint id: the `model` of a create or quote.")
    name = serializers.CharField(help_text="What the portal calls it.")
    images = ModelImagesSerializer()
    options = ModelOptionsSerializer()
    optional_arguments = ModelOptionalArgumentsSerializer(
        help_text="Which of fal's optional arguments the model takes (absent ones get fal's "
        "defaults)."
    )
    prices = ModelPriceSerializer(many=True, help_text="Active prices per second of video.")
    source_url = serializers.CharField(help_text="fal's page its schema and price come from.")
