"""/api/v1/generations/: create (with Idempotency-Key), list, detail, cancel, quote.

Views parse, call one service, render. Money and statuses move only in
`generations.services`; a request's fields and rules are declared in
`generations.requests` (the create's and the quote's body, and their schema).
"""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    OpenApiTypes,
    extend_schema,
)
from rest_framework import generics, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from generations import quotes, selectors, services, states
from generations.models import Generation
from generations.requests import DEFAULTS, offers
from generations.serializers import (
    CatalogueModelSerializer,
    GenerationCreateSerializer,
    GenerationSerializer,
    QuoteRequestSerializer,
    QuoteSerializer,
)
from veoproject.api_errors import error_responses, quote_conflicts
from veoproject.exceptions import ApplicationError, ValidationFailed
from veoproject.pagination import NewestFirstPagination
from veoproject.request_types import AuthenticatedRequest
from veoproject.throttles import ApiReadThrottle, GenerationCreateThrottle
from veoproject.uploads import upload_body_limit

PUBLIC_STATUSES = list(states.PUBLIC_STATUSES)

_GENERATION_EXAMPLE = {
    "id": "5f0c6b1e-8a39-4c1e-9d55-2b7a1f3c9e10",
    "status": "succeeded",
    "prompt": "A slow dolly shot across a misty lake at dawn",
    "model": "fal-ai/veo3.1/image-to-video",
    "image_url": "https://images.example.com/lake.jpg",
    **DEFAULTS,
    "cost_credits": 320,
    "video_url": "http://127.0.0.1:8000/media/generations/5f0c6b1e-8a39-4c1e-9d55-2b7a1f3c9e10/video.mp4",
    "error": None,
    "moderation": {"state": "visible", "reason": None},
    "callback_url": "",
    "queue_position": None,
    "created_at": "2026-01-05T10:00:00Z",
    "started_at": "2026-01-05T10:00:04Z",
    "completed_at": "2026-01-05T10:01:10Z",
}

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string up to 255 characters (a UUID is ideal). Retrying with the "
    "same key and the same body returns the first generation (same status code, header "
    "`Idempotent-Replayed: true`) and charges nothing more; the same key with a different "
    "body answers 422 `idempotency_key_reused`. Keys are per user and kept at least 24 h.",
)


class GenerationListCreateView(generics.GenericAPIView):
    serializer_class = GenerationSerializer
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_throttles(self) -> list[BaseThrottle]:
        if self.request.method == "POST":
            return [GenerationCreateThrottle()]
        return [ApiReadThrottle()]

    @extend_schema(
        tags=["generations"],
        summary="Your generations, newest first",
        parameters=[
            OpenApiParameter(
                "status",
                OpenApiTypes.STR,
                enum=PUBLIC_STATUSES,
                description="Only generations in this status.",
            ),
        ],
        responses={200: GenerationSerializer(many=True), **error_responses(400, 401, 404, 429)},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in PUBLIC_STATUSES:
            raise ValidationFailed(
                fields={"status": [f"Choose one of {', '.join(PUBLIC_STATUSES)}."]}
            )
        generations = selectors.generation_list(user=request.user, status=wanted)
        generations = generations.prefetch_related("input_images")  # one query a page
        page = self.paginate_queryset(generations)
        serializer = GenerationSerializer(page, many=True, context={"request": request})
        return self.get_paginated_response(serializer.data)

    @extend_schema(
        tags=["generations"],
        summary="Start a generation",
        description="Send JSON with `image_url`, or multipart/form-data with an `image` file. "
        "The cost is quoted and held at once (released if it fails or is canceled, spent "
        "when it succeeds). Poll the generation, or give a `callback_url`.",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request={
            "application/json": GenerationCreateSerializer,
            "multipart/form-data": GenerationCreateSerializer,
        },
        responses={
            201: OpenApiResponse(
                GenerationSerializer,
                description="Accepted (also for an idempotent replay of the same request).",
            ),
            **error_responses(400, 401, 402, 413, 422, 429),
            409: quote_conflicts(),
        },
        examples=[
            OpenApiExample(
                "From an image URL",
                value={
                    "prompt": "A slow dolly shot across a misty lake at dawn",
                    "image_url": "https://images.example.com/lake.jpg",
                    **DEFAULTS,
                },
                request_only=True,
            ),
            OpenApiExample(
                "Another model: first and last frame",
                value={
                    "model": "fal-ai/veo3.1/fast/first-last-frame-to-video",
                    "prompt": "The lake freezes over as night falls",
                    "first_frame_url": "https://images.example.com/lake-dawn.jpg",
                    "last_frame_url": "https://images.example.com/lake-night.jpg",
                    "duration": "6s",
                    "negative_prompt": "people",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Accepted",
                value={
                    **_GENERATION_EXAMPLE,
                    "status": "pending",
                    "video_url": None,
                    "started_at": None,
                    "completed_at": None,
                },
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        _refuse_oversized_body(request)
        # The body goes to the service as sent: it validates it with the request
        # definition (the image, if uploaded, is in `request.data` too).
        result = services.accept(
            user=request.user,
            params=request.data,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        body = GenerationSerializer(result.generation, context={"request": request}).data
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        return Response(body, status=status.HTTP_201_CREATED, headers=headers)


class RequestTooLarge(ApplicationError):
    code = "request_too_large"
    http_status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


def _refuse_oversized_body(request: Request) -> None:
    """Refuse a body larger than any valid create before it is read (and spooled to disk):
    an image of IMAGE_MAX_BYTES plus room for the form fields."""
    limit = upload_body_limit()
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise RequestTooLarge(
            f"The request is too large: images may be at most "
            f"{settings.IMAGE_MAX_BYTES // (1024 * 1024)} MB."
        )


def _own_generation(request: AuthenticatedRequest, pk: UUID) -> Generation:
    """The caller's generation; anyone else's is a 404, exactly like a missing one."""
    return get_object_or_404(Generation.objects.filter(owner_id=request.user.pk), pk=pk)


@extend_schema(
    tags=["generations"],
    summary="One generation",
    description="`video_url` is set once it succeeded: download it with the same "
    "credentials (Bearer token or session). `error` is set when it failed.",
    responses={
        200: OpenApiResponse(
            GenerationSerializer,
            examples=[OpenApiExample("Succeeded", value=_GENERATION_EXAMPLE)],
        ),
        **error_responses(401, 404, 429),
    },
)
class GenerationDetailView(APIView):
    throttle_classes = [ApiReadThrottle]

    def get(self, request: AuthenticatedRequest, pk: UUID) -> Response:
        generation = _own_generation(request, pk)
        return Response(GenerationSerializer(generation, context={"request": request}).data)


@extend_schema(
    tags=["generations"],
    summary="Cancel a generation",
    description="Possible while it is pending or queued; its held credits are released. "
    "A running generation cannot be canceled (409).",
    request=None,
    responses={200: GenerationSerializer, **error_responses(401, 404, 409, 429)},
)
class GenerationCancelView(APIView):
    throttle_classes = [ApiReadThrottle]

    def post(self, request: AuthenticatedRequest, pk: UUID) -> Response:
        generation = _own_generation(request, pk)
        generation = services.cancel(generation=generation, actor=request.user)
        return Response(GenerationSerializer(generation, context={"request": request}).data)


@extend_schema(
    tags=["generations"],
    summary="Price a generation without starting it",
    description="Takes the same fields as a create (prompt and image are optional and "
    "ignored); nothing is charged. The answer's `quote_id` binds the price until "
    "`expires_at`: a create of the same model and options that sends it is charged exactly "
    "`cost_credits`, even if prices change meanwhile. A quote pays for one generation.",
    request={
        "application/json": QuoteRequestSerializer,
        "multipart/form-data": QuoteRequestSerializer,
    },
    responses={
        200: OpenApiResponse(
            QuoteSerializer,
            examples=[
                OpenApiExample(
                    "The defaults",
                    value={
                        "cost_credits": 320,
                        "breakdown": {
                            "seconds": 8,
                            "credits_per_second": 40,
                            "resolution": DEFAULTS["resolution"],
                            "generate_audio": DEFAULTS["generate_audio"],
                            "endpoint": "fal-ai/veo3.1/image-to-video",
                        },
                        "price_breakdown": [
                            {
                                "item": "model",
                                "value": "fal-ai/veo3.1/image-to-video",
                                "seconds": 8,
                                "credits_per_second": 20,
                                "credits": 160,
                            },
                            {
                                "item": "resolution",
                                "value": DEFAULTS["resolution"],
                                "seconds": 8,
                                "credits_per_second": 0,
                                "credits": 0,
                            },
                            {
                                "item": "audio",
                                "value": True,
                                "seconds": 8,
                                "credits_per_second": 20,
                                "credits": 160,
                            },
                        ],
                        "quote_id": "0b6f2a52-5d2e-4f4e-9a43-3c1d7e0f9a21",
                        "expires_at": "2026-01-05T10:10:00Z",
                    },
                )
            ],
        ),
        **error_responses(400, 401, 413, 429),
    },
)
class GenerationQuoteView(APIView):
    throttle_classes = [ApiReadThrottle]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def post(self, request: AuthenticatedRequest) -> Response:
        _refuse_oversized_body(request)
        issued = quotes.issue(user=request.user, params=request.data)
        return Response(
            QuoteSerializer(
                {
                    "cost_credits": issued.price.credits,
                    "breakdown": issued.price.breakdown,
                    "price_breakdown": issued.price.price_breakdown,
                    "quote_id": issued.record.pk,
                    "expires_at": issued.record.expires_at,
                }
            ).data
        )


@extend_schema(
    tags=["models"],
    summary="The models you can order",
    description="The Veo 3.1 models on offer (those with an active price), each with the "
    "images it takes, the values and defaults of its options, its optional arguments and "
    "its prices per second. Name one as `model` in a create or a quote (default "
    "`fal-ai/veo3.1/image-to-video`).",
    responses={200: CatalogueModelSerializer(many=True), **error_responses(401, 429)},
)
class ModelListView(APIView):
    throttle_classes = [ApiReadThrottle]

    def get(self, request: Request) -> Response:
        return Response(CatalogueModelSerializer(offers(), many=True).data)
