"""/api/v1/ routes for generations (mounted by veoproject/api_urls.py)."""

from django.urls import path

from generations import api

urlpatterns = [
    path("models/", api.ModelListView.as_view(), name="api-models"),
    path("generations/", api.GenerationListCreateView.as_view(), name="api-generations"),
    path("generations/quote/", api.GenerationQuoteView.as_view(), name="api-generation-quote"),
    path(
        "generations/<uuid:pk>/",
        api.GenerationDetailView.as_view(),
        name="api-generation-detail",
    ),
    path(
        "generations/<uuid:pk>/cancel/",
        api.GenerationCancelView.as_view(),
        name="api-generation-cancel",
    ),
]
