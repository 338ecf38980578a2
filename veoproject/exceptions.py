"""The project's one family of errors, and the one JSON shape every API error takes.

Services raise `ApplicationError` subclasses; the API renders them (and DRF's own errors)
as ``{"error": {"code": "...", "message": "...", "fields": {...}}}``; portal views turn
them into form errors or messages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    code = "error"
    http_status: int = status.HTTP_400_BAD_REQUEST
    # Translated lazily, read in the language active where the error is raised.
    default_message: StrOrPromise = gettext_lazy("The request could not be completed.")

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = str(message or self.default_message)
        if code:
            self.code = code
        self.fields = fields or {}
        self.extra = extra or {}
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    code = "invalid"
    default_message = gettext_lazy("Some fields are invalid.")


class InsufficientCredits(ApplicationError):
    code = "insufficient_credits"
    http_status = status.HTTP_402_PAYMENT_REQUIRED
    default_message = gettext_lazy("Not enough credits.")

    def __init__(self, *, required: int, available: int) -> None:
        super().__init__(
            _("This needs %(required)s credits; %(available)s are available.")
            % {"required": required, "available": available},
            extra={"required": required, "available": available},
        )
        self.required = required
        self.available = available


class CreditsOwed(ApplicationError):
    """Credits a refunded or disputed payment took back were already spent: nothing new
    starts until a top-up or a grant has paid them (accounts.ledger)."""

    code = "credits_owed"
    http_status = status.HTTP_402_PAYMENT_REQUIRED
    default_message = gettext_lazy("Credits are owed on this account.")

    def __init__(self, *, owed: int) -> None:
        super().__init__(
            _(
                "A refunded or disputed payment took back %(owed)s credits that had already "
                "been spent. Buy credits or redeem a voucher to settle them; new videos can "
                "start once they are paid."
            )
            % {"owed": owed},
            extra={"owed": owed},
        )
        self.owed = owed


class InvalidTransition(ApplicationError):
    code = "invalid_transition"
    http_status = status.HTTP_409_CONFLICT
    default_message = gettext_lazy("That is not possible in the current state.")


class LimitExceeded(ApplicationError):
    code = "too_many_in_flight"
    http_status = status.HTTP_429_TOO_MANY_REQUESTS
    default_message = gettext_lazy("Too many generations in flight.")

    def __init__(self, message: str | None = None, *, retry_after: int = 10, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency_key_reused"
    http_status = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_message = gettext_lazy(
        "This Idempotency-Key was already used with a different request."
    )


class StorageError(ApplicationError):
    """Our storage (disk, S3) refused a write: an operational problem, retried later by
    the client; the raw cause goes to the logs, not to the user."""

    code = "storage_unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_message = gettext_lazy(
        "We could not store your image just now. Nothing was charged; please try again in a minute."
    )


class PricingError(ApplicationError):
    code = "no_price"
    default_message = gettext_lazy("No price is set for these options.")


def error_body(code: str, message: str, fields: dict | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}


_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "throttled",
    drf_exceptions.ParseError: "parse_error",
    drf_exceptions.ValidationError: "invalid",
}


def _flatten_fields(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {
            str(key): [str(m) for m in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
    return {
        "non_field_errors": [str(m) for m in (detail if isinstance(detail, list) else [detail])]
    }


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF EXCEPTION_HANDLER: every error in one shape."""
    # Imported here: rest_framework.views loads the authentication classes, which use
    # this module's exceptions (an import cycle at module level).
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, ApplicationError):
        rendered = Response(
            error_body(exc.code, exc.message, exc.fields, **exc.extra), status=exc.http_status
        )
        if isinstance(exc, LimitExceeded):
            rendered["Retry-After"] = str(exc.retry_after)
        return rendered
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("event=api_unhandled_error", exc_info=exc)
        return Response(
            error_body("server_error", _("Something went wrong on our side.")),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = error_body(code, _("Some fields are invalid."), _flatten_fields(exc.detail))
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(code, str(detail))
    return response
