"""/api/: v1 endpoints (accounts and generations) and the OpenAPI schema and docs."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import exceptions, permissions


class DocsAccess(permissions.BasePermission):
    """Anyone while API_DOCS_PUBLIC (a public API documents itself), else signed-in users
    (session or token). Read at each request, so the setting can change at run time."""

    def has_permission(self, request, view) -> bool:
        return settings.API_DOCS_PUBLIC or bool(request.user and request.user.is_authenticated)


class SchemaView(SpectacularAPIView):
    permission_classes = [DocsAccess]


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI with its start-up script served as a file (`?script`), not inline, so
    the pages' Content-Security-Policy needs no 'unsafe-inline' for scripts."""

    permission_classes = [DocsAccess]

    def handle_exception(self, exc):
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path())  # a page: sign in first
        return super().handle_exception(exc)


urlpatterns = [
    path("v1/", include("accounts.api_urls")),
    path("v1/", include("generations.api_urls")),
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
]
