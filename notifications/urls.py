from django.urls import path

from notifications import views

urlpatterns = [
    path("account/notifications/", views.notification_settings, name="notification-settings"),
    path(
        "notifications/unsubscribe/<str:token>/",
        views.unsubscribe,
        name="notifications-unsubscribe",
    ),
]
