"""/api/v1/ routes for the account (mounted by veoproject/api_urls.py)."""

from django.urls import include, path

from accounts import api

urlpatterns = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path(
        "me/webhook-secret/rotate/",
        api.WebhookSecretRotateView.as_view(),
        name="api-webhook-secret-rotate",
    ),
    path("ledger/", api.LedgerListView.as_view(), name="api-ledger"),
    path("tokens/", api.TokenListCreateView.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/", api.TokenDestroyView.as_view(), name="api-token-detail"),
    path("vouchers/", include("accounts.voucher_api_urls")),
]
