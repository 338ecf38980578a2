from django.urls import path

from generations import media

urlpatterns = [
    # Private files, served only to their owner and staff (the API's video_url points here).
    path("media/generations/<uuid:pk>/video.mp4", media.generation_video, name="generation-video"),
    path("media/generations/<uuid:pk>/image", media.generation_image, name="generation-image"),
]
