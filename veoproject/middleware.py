"""Request bodies we will not read: too large, too many fields, or malformed.

Django raises `RequestDataTooBig`, `TooManyFieldsSent` or `TooManyFilesSent` wherever a
body is first read: a 400 page when that is Django's CSRF check, but a 500 inside a REST
framework view. This middleware meets every request before any view or CSRF check reads
it, so each route (portal, admin, webhooks, API) answers the same way: 413 in our error
shape, without reading a body whose Content-Length is already over the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.translation import gettext as _

from veoproject import errors
from veoproject.uploads import upload_body_limit

logger = logging.getLogger(__name__)

FORM_CONTENT_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


class RequestLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.refusal(request) or self.get_response(request)

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            return errors.bad_request_body(request, _("The Content-Length header is invalid."))
        limit = body_limit(request)
        if limit is not None and length > limit:
            return self._too_large(request, length, limit)
        try:
            request.GET  # noqa: B018
        except TooManyFieldsSent:
            return errors.uri_too_long(request)
        try:
            # Parsed here, once, inside the limits (Django's CSRF check and REST
            # framework use this same parse later).
            if request.method == "POST" and request.content_type in FORM_CONTENT_TYPES:
                request.POST  # noqa: B018
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
            return self._too_large(request, length, limit, reason=type(exc).__name__)
        except MultiPartParserError:
            return errors.bad_request_body(request, _("The request body is not valid form data."))
        return None

    def _too_large(
        self, request: HttpRequest, length: int, limit: int | None, reason: str = "length"
    ) -> HttpResponse:
        logger.warning(
            "event=request_too_large path=%s bytes=%s limit=%s reason=%s",
            request.path,
            length,
            limit,
            reason,
        )
        return errors.request_too_large(request)


def body_limit(request: HttpRequest) -> int | None:
    """The most a body may carry: one image and its form fields for an upload, otherwise
    DATA_UPLOAD_MAX_MEMORY_SIZE (None: no limit)."""
    if request.content_type == "multipart/form-data":
        return upload_body_limit()
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE
