"""Error pages: JSON in our one error shape under /api/ and /webhooks/, the site's own
pages elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader

from veoproject.exceptions import error_body


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            error_body("server_error", "Something went wrong on our side."), status=500
        )
    # No request context: the error may come from the database the context processors
    # read (the credits in the header), and this page must render anyway.
    return HttpResponseServerError(loader.get_template("500.html").render({}))
