from django.contrib import admin
from django.urls import include, path

from accounts.payments import views as payment_views
from veoproject import health, languages, metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("api/", include("veoproject.api_urls")),
    path("webhooks/stripe/", payment_views.stripe_webhook, name="stripe-webhook"),
    path("webhooks/", include("generations.webhook_urls")),
    path("accounts/", include("allauth.urls")),
    # The language switcher: Django's set_language, which also stores a user's choice.
    path("i18n/setlang/", languages.set_language, name="set_language"),
    path("", include("accounts.urls")),
    path("", include("generations.urls")),
    path("", include("notifications.urls")),
]

handler400 = "veoproject.errors.bad_request"
# allauth's rate limits (and only they) answer 429 through this.
handler429 = "accounts.views.rate_limited"
handler404 = "veoproject.errors.page_not_found"
handler500 = "veoproject.errors.server_error"
