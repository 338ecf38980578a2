"""The project's URLs plus the ceiling view (bench settings only)."""

from django.urls import include, path

from bench.views import InsertOneRowView

urlpatterns = [
    path("api/bench/insert/", InsertOneRowView.as_view(), name="bench-insert"),
    path("", include("veoproject.urls")),
]
