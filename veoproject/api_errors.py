"""The one error shape of the API, for the OpenAPI schema.

`veoproject.exceptions` renders every error as ``{"error": {"code", "message", "fields"}}``;
this module describes that shape to drf-spectacular: `error_responses(...)` for an
operation's `extend_schema(responses=...)`, and `add_error_headers`, the postprocessing
hook (SPECTACULAR_SETTINGS) that documents Retry-After and WWW-Authenticate.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema_field
from rest_framework import serializers


@extend_schema_field(
    {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
)
class _FieldErrors(serializers.DictField):
    pass


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: branch on this.")
    message = serializers.CharField(help_text="For humans; may change.")
    # The metaclass moves declared fields off the class, so these names do not shadow
    # Serializer.fields / Field.required at run time; the stubs cannot see that.
    fields = _FieldErrors(  # type: ignore[assignment]
        help_text="Per-field messages for validation errors; else empty."
    )
    required = serializers.IntegerField(  # type: ignore[assignment]
        required=False, help_text="insufficient_credits only: credits the request needs."
    )
    available = serializers.IntegerField(
        required=False, help_text="insufficient_credits only: credits available now."
    )
    cost_credits = serializers.IntegerField(
        required=False,
        help_text="quote_expired, quote_mismatch and price_changed only: the price now.",
    )
    price_breakdown = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="quote_expired, quote_mismatch and price_changed only: the price now as "
        "line items.",
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


_ERROR_DESCRIPTIONS = {
    400: ("Invalid input.", "invalid", "Some fields are invalid.", {"field": ["Message."]}),
    401: (
        "Missing, malformed, unknown, revoked or expired token, or a suspended account. "
        "Comes with WWW-Authenticate.",
        "not_authenticated",
        "Authentication credentials were not provided.",
        {},
    ),
    402: (
        "Not enough available credits; nothing was held.",
        "insufficient_credits",
        "This needs 320 credits; 100 are available.",
        {},
    ),
    403: (
        "Authenticated, but not allowed this way (e.g. token management with a token).",
        "permission_denied",
        "Manage API tokens from a signed-in browser session.",
        {},
    ),
    404: ("Not found (also for other users' objects).", "not_found", "Not found.", {}),
    409: (
        "Not possible in the current state.",
        "invalid_transition",
        "Only pending or queued generations can be canceled.",
        {},
    ),
    413: (
        "The request body is larger than any valid request (images: IMAGE_MAX_BYTES).",
        "request_too_large",
        "The request is too large: images may be at most 10 MB.",
        {},
    ),
    422: (
        "This Idempotency-Key was used before with a different request.",
        "idempotency_key_reused",
        "This Idempotency-Key was already used with a different request.",
        {},
    ),
    429: (
        "Throttled, or too many generations in flight; see Retry-After.",
        "throttled",
        "Request was throttled. Expected available in 2 seconds.",
        {},
    ),
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """OpenAPI responses in our error shape, for `extend_schema(responses=...)`."""
    responses = {}
    for status in statuses:
        description, code, message, fields = _ERROR_DESCRIPTIONS[status]
        example: dict[str, dict[str, Any]] = {
            "error": {"code": code, "message": message, "fields": fields}
        }
        if status == 402:
            example["error"].update(required=320, available=100)
        responses[status] = OpenApiResponse(
            response=ErrorSerializer,
            description=description,
            examples=[OpenApiExample(code, value=example, response_only=True)],
        )
    return responses


_QUOTE_CONFLICTS = {
    "quote_expired": "This quote expired at 2026-01-05 10:10:00 UTC. The price now is 320 "
    "credits; ask for a new quote.",
    "quote_mismatch": "This quote was for another model or other options. The price of these "
    "is 320 credits; ask for a quote of them.",
    "price_changed": "The price is now 320 credits, more than the 240 you agreed to; nothing "
    "was held.",
}


def quote_conflicts() -> OpenApiResponse:
    """A create's 409s: the price the client agreed to cannot be honoured (nothing held)."""
    return OpenApiResponse(
        response=ErrorSerializer,
        description="The price you agreed to cannot be honoured; nothing was held. "
        "`quote_expired`: the quote expired or already paid for a generation; "
        "`quote_mismatch`: it quoted another model or other options, or is not yours (an "
        "unknown quote_id answers the same); `price_changed`: without a quote, the price "
        "is above max_cost_credits. Each says the current price in `cost_credits`.",
        examples=[
            OpenApiExample(
                code,
                value={
                    "error": {"code": code, "message": message, "fields": {}, "cost_credits": 320}
                },
                response_only=True,
            )
            for code, message in _QUOTE_CONFLICTS.items()
        ],
    )


def add_error_headers(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: document Retry-After on 429s and
    WWW-Authenticate on 401s, which OpenApiResponse cannot express."""
    headers = {
        "429": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        },
        "401": {
            "WWW-Authenticate": {
                "description": 'The scheme to use: `Bearer realm="api"`.',
                "schema": {"type": "string"},
            }
        },
    }
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for code, response in operation.get("responses", {}).items():
                if code in headers:
                    response.setdefault("headers", {}).update(headers[code])
    return result
