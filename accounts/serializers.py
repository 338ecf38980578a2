"""API shapes for the account: me, ledger entries, tokens."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from accounts.models import ApiToken, LedgerEntry


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.EmailField()
    balance = serializers.IntegerField(help_text="Credits on the account.")
    reserved = serializers.IntegerField(help_text="Credits held for generations in flight.")
    available = serializers.IntegerField(help_text="balance - reserved: what you can spend.")
    owed = serializers.IntegerField(
        help_text="Credits owed after a refunded or disputed purchase had been spent; while "
        "above 0, creates answer 402 `credits_owed` until new credits have paid it."
    )
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
    """A token just created; the view passes the raw token as context["raw_token"]."""

    token = serializers.SerializerMethodField(
        help_text="The token itself. Shown only in this response: only its hash is stored."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        # Not on the model: only the token's hash is stored.
        return self.context["raw_token"]
