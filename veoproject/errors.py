"""Error pages: JSON in our one error shape under /api/ and /webhooks/, the site's own
pages elsewhere."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.utils.translation import gettext as _
from django.views import defaults

from veoproject.exceptions import error_body


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def _error(
    request: HttpRequest, *, status: int, code: str, title: str, message: str
) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body(code, message), status=status)
    context = {"status": status, "title": title, "message": message}
    return render(request, "error.html", context, status=status)


def request_too_large(request: HttpRequest) -> HttpResponse:
    megabytes = settings.IMAGE_MAX_BYTES // (1024 * 1024)
    return _error(
        request,
        status=413,
        code="request_too_large",
        title=_("Too large"),
        message=_("The request is too large: images may be at most %(megabytes)s MB.")
        % {"megabytes": megabytes},
    )


def uri_too_long(request: HttpRequest) -> HttpResponse:
    return _error(
        request,
        status=414,
        code="uri_too_long",
        title=_("Address too long"),
        message=_("The address has too many parameters."),
    )


def bad_request_body(request: HttpRequest, message: str) -> HttpResponse:
    return _error(request, status=400, code="bad_request", title=_("Bad request"), message=message)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400. A body found too large where the request limits middleware did not look
    (some other code read it first) is still a 413, never Django's bare 400."""
    if isinstance(exception, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        return request_too_large(request)
    if _wants_json(request):
        return JsonResponse(error_body("bad_request", _("Bad request.")), status=400)
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("not_found", _("Not found.")), status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            error_body("server_error", _("Something went wrong on our side.")), status=500
        )
    # No request context: the error may come from the database the context processors
    # read (the credits in the header), and this page must render anyway.
    return HttpResponseServerError(loader.get_template("500.html").render({}))
