from django.contrib import admin
from django.urls import include, path

from veoproject import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("api/", include("veoproject.api_urls")),
    path("webhooks/", include("generations.webhook_urls")),
    path("", include("accounts.urls")),
    path("", include("generations.urls")),
]

handler400 = "veoproject.errors.bad_request"
handler404 = "veoproject.errors.page_not_found"
handler500 = "veoproject.errors.server_error"
