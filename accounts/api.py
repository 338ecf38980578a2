"""/api/v1/ for the account: me, webhook secret, ledger, tokens.

Token management (and rotating the webhook secret) needs a signed-in browser session: an
API token cannot mint, list or revoke tokens, so a leaked token cannot entrench itself.
"""

from __future__ import annotations

from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import ledger_export, tokens
from accounts.models import ApiToken, LedgerEntry
from accounts.selectors import credit_summary
from accounts.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    LedgerEntrySerializer,
    MeSerializer,
    WebhookSecretSerializer,
)
from veoproject.api_errors import error_responses
from veoproject.pagination import NewestFirstPagination
from veoproject.request_types import AuthenticatedRequest
from veoproject.throttles import ApiReadThrottle


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`veo_...`): create one on your account page, "
            "at POST /api/v1/tokens/ while signed in, or with `manage.py create_api_token`.",
        }


class IsSessionAuthenticated(permissions.BasePermission):
    """Signed in through the browser session, not with an API token."""

    message = "Manage API tokens and the webhook secret from a signed-in browser session."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(
            request.user
            and request.user.is_authenticated
            and not isinstance(request.auth, ApiToken)
        )


@extend_schema(
    tags=["account"],
    summary="Your account and credits",
    description="`webhook_secret` is only in a signed-in browser session's answer, never "
    "with an API token.",
    responses={200: MeSerializer, **error_responses(401, 429)},
    examples=[
        OpenApiExample(
            "me",
            value={
                "username": "demo",
                "email": "demo@example.com",
                "balance": 5000,
                "reserved": 320,
                "available": 4680,
                "owed": 0,
            },
            response_only=True,
        )
    ],
)
class MeView(APIView):
    throttle_classes = [ApiReadThrottle]

    def get(self, request: AuthenticatedRequest) -> Response:
        summary = credit_summary(user=request.user)
        data = {
            "username": request.user.username,
            "email": request.user.email,
            "balance": summary.balance,
            "reserved": summary.reserved,
            "available": summary.available,
            "owed": summary.owed,
        }
        if not isinstance(request.auth, ApiToken):
            # The secret signs callbacks to the integrator: a token that leaked must not
            # hand it out too. A browser session (the portal) may see it.
            data["webhook_secret"] = request.user.webhook_secret
        return Response(MeSerializer(data).data)


@extend_schema(
    tags=["account"],
    summary="Rotate the webhook secret (browser session only)",
    description="The old secret stops working at once: callbacks sent from now on, retries "
    "included, are signed with the new one.",
    request=None,
    responses={200: WebhookSecretSerializer, **error_responses(401, 403, 429)},
)
class WebhookSecretRotateView(APIView):
    permission_classes = [IsSessionAuthenticated]
    throttle_classes = [ApiReadThrottle]

    def post(self, request: AuthenticatedRequest) -> Response:
        secret = tokens.rotate_webhook_secret(request.user)
        return Response(WebhookSecretSerializer({"webhook_secret": secret}).data)


class LedgerCsvRenderer(JSONRenderer):
    """Lets `?format=csv` (or `Accept: text/csv`) through content negotiation. The view
    answers a CSV request with the streamed download (accounts.ledger_export) and an error
    with JSON (finalize_response), so this renders no body of its own: anything else that
    reaches it comes out as JSON, never as a 500."""

    media_type = "text/csv"
    format = "csv"


@extend_schema(
    tags=["account"],
    summary="Your credit ledger, newest first; all of it as CSV with ?format=csv",
    description="Every movement of your credits: grants, top-ups, holds for generations, "
    "captures (spent), releases (given back), refunds and corrections.\n\n"
    "With `?format=csv` (or `Accept: text/csv`) the answer is a download of all your "
    "entries, oldest first and not paginated, streamed as it is read: columns "
    f"`{', '.join(ledger_export.COLUMNS)}` (date in ISO 8601, amount signed, reason as "
    "on your credits page). Text that a spreadsheet would take for a formula starts "
    "with an apostrophe.",
    parameters=[
        OpenApiParameter(
            "format",
            str,
            enum=["json", "csv"],
            required=False,
            description="`csv`: the whole ledger as a CSV download instead of JSON pages.",
        )
    ],
    responses={
        (200, "application/json"): OpenApiResponse(
            LedgerEntrySerializer(many=True),
            description="A page of entries, newest first; or, with `?format=csv`, all of "
            "them as a CSV download (`Content-Disposition: attachment`).",
        ),
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
        # Errors keep the one JSON shape, also to a CSV request.
        **{
            (code, "application/json"): response
            for code, response in error_responses(401, 404, 429).items()
        },
    },
)
class LedgerListView(generics.ListAPIView):
    request: AuthenticatedRequest
    serializer_class = LedgerEntrySerializer
    pagination_class = NewestFirstPagination
    throttle_classes = [ApiReadThrottle]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, LedgerCsvRenderer]

    def get_queryset(self):
        return LedgerEntry.objects.filter(account__user_id=self.request.user.pk)

    # A CSV request is answered with Django's StreamingHttpResponse, not a DRF Response.
    def list(self, request: AuthenticatedRequest, *args, **kwargs) -> HttpResponseBase:  # type: ignore[override]
        if isinstance(request.accepted_renderer, LedgerCsvRenderer):
            return ledger_export.csv_response(user=request.user)
        return super().list(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        # An error (401, 429 ...) to a CSV request keeps our one JSON error shape.
        if isinstance(response, Response) and isinstance(
            getattr(request, "accepted_renderer", None), LedgerCsvRenderer
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class TokenListCreateView(generics.GenericAPIView):
    permission_classes = [IsSessionAuthenticated]
    throttle_classes = [ApiReadThrottle]
    serializer_class = ApiTokenSerializer
    pagination_class = None

    @extend_schema(
        tags=["tokens"],
        summary="Your API tokens (browser session only)",
        description="Active tokens; revoked ones disappear. The tokens themselves are never "
        "shown again, only their public prefix.",
        responses={200: ApiTokenSerializer(many=True), **error_responses(401, 403, 429)},
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(ApiTokenSerializer(tokens.active_tokens(user=request.user), many=True).data)

    @extend_schema(
        tags=["tokens"],
        summary="Create an API token (browser session only)",
        description="The response carries the token (`veo_...`) this once; only its "
        "SHA-256 is stored. Send it as `Authorization: Bearer <token>`.",
        request=ApiTokenCreateSerializer,
        responses={201: ApiTokenCreatedSerializer, **error_responses(400, 401, 403, 429)},
    )
    def post(self, request: AuthenticatedRequest) -> Response:
        serializer = ApiTokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = tokens.create_token(user=request.user, **serializer.validated_data)
        return Response(
            ApiTokenCreatedSerializer(token, context={"raw_token": raw}).data,
            status=status.HTTP_201_CREATED,
        )


class TokenDestroyView(APIView):
    permission_classes = [IsSessionAuthenticated]
    throttle_classes = [ApiReadThrottle]

    @extend_schema(
        tags=["tokens"],
        summary="Revoke an API token (browser session only)",
        description="The token stops working at once.",
        responses={204: None, **error_responses(401, 403, 404, 429)},
    )
    def delete(self, request: AuthenticatedRequest, pk: int) -> Response:
        token = get_object_or_404(tokens.active_tokens(user=request.user), pk=pk)
        tokens.revoke_token(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
