from django.urls import path

from generations import webhook_views

urlpatterns = [
    path("fal/", webhook_views.fal_webhook, name="fal-webhook"),
]
