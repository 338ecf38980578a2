from django.urls import path

from generations import media, views

urlpatterns = [
    # Private files, served only to their owner and staff (the API's video_url points here).
    path("media/generations/<uuid:pk>/video.mp4", media.generation_video, name="generation-video"),
    path("media/generations/<uuid:pk>/image", media.generation_image, name="generation-image"),
    # The uploaded frames and references of a model that takes several images.
    path(
        "media/generations/<uuid:pk>/images/<int:number>/",
        media.generation_input_image,
        name="generation-input-image",
    ),
    # An uploaded input image for fal to fetch: a signed URL that expires.
    path("media/signed/<str:token>/", media.signed_image, name="generation-image-signed"),
    # Portal pages.
    path("", views.studio, name="studio"),
    path("sample.mp4", views.landing_sample, name="landing-sample"),
    path("quote/", views.quote_preview, name="quote-preview"),
    path("studio/model-fields/", views.studio_model_fields, name="studio-model-fields"),
    path("videos/", views.generation_list, name="generation-list"),
    path("videos/<uuid:pk>/", views.generation_detail, name="generation-detail"),
    path(
        "videos/<uuid:pk>/status/",
        views.generation_status_partial,
        name="generation-status-partial",
    ),
    path("videos/<uuid:pk>/cancel/", views.generation_cancel, name="generation-cancel"),
]
