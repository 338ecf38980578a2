"""API shapes for the account: me, ledger entries, tokens, and the one error shape."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from accounts.models import ApiToken, LedgerEntry


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.EmailField()
    balance = serializers.IntegerField(help_text="Credits on the account.")
    reserved = serializers.IntegerField(help_text="Credits held for generations in flight.")
    available = serializers.IntegerField(help_text="balance - reserved: what you can spend.")
    webhook_secret = serializers.CharField(
        required=False,
        help_text="Signs the callbacks we POST to your callback_url (HMAC-SHA256). Only "
        "in a signed-in browser session, never with an API token (a stolen token must not "
        "be able to forge your callbacks): copy it from your account's API page.",
    )


class WebhookSecretSerializer(serializers.Serializer):
    webhook_secret = serializers.CharField()


class LedgerEntrySerializer(serializers.ModelSerializer):
    generation = serializers.UUIDField(
        source="generation_id",
        allow_null=True,
        help_text="The generation this entry belongs to, if any.",
    )

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "kind",
            "amount",
            "reserved_change",
            "balance_after",
            "reserved_after",
            "generation",
            "reason",
            "created_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "amount": {"help_text": "Signed change to the balance."},
            "reserved_change": {"help_text": "Signed change to the reserved credits."},
        }


class ApiTokenSerializer(serializers.ModelSerializer):
    prefix = serializers.SerializerMethodField(help_text="The token's public beginning.")
    expired = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at", "expired"]
        read_only_fields = fields

    def get_prefix(self, token: ApiToken) -> str:
        return f"veo_{token.prefix}_"

    def get_expired(self, token: ApiToken) -> bool:
        return token.expires_at is not None and token.expires_at <= timezone.now()


class ApiTokenCreateSerializer(serializers.Serializer):
    """Parses the request; `accounts.tokens.create_token` validates and mints."""

    name = serializers.CharField(max_length=100, trim_whitespace=True)
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Optional; the token stops working then."
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(
        help_text="The token itself. Shown only in this response: only its hash is stored."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


# --- The error shape, for the schema -----------------------------------------------------


@extend_schema_field(
    {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
)
class _FieldErrors(serializers.DictField):
    pass


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: branch on this.")
    message = serializers.CharField(help_text="For humans; may change.")
    fields = _FieldErrors(help_text="Per-field messages for validation errors; else empty.")
    required = serializers.IntegerField(
        required=False, help_text="insufficient_credits only: credits the request needs."
    )
    available = serializers.IntegerField(
        required=False, help_text="insufficient_credits only: credits available now."
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
        example = {"error": {"code": code, "message": message, "fields": fields}}
        if status == 402:
            example["error"].update(required=320, available=100)
        responses[status] = OpenApiResponse(
            response=ErrorSerializer,
            description=description,
            examples=[OpenApiExample(code, value=example, response_only=True)],
        )
    return responses
