"""Private media: a generation's video and input image, for its owner and staff only."""

from __future__ import annotations

from uuid import UUID

from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404

from generations.models import Generation


def _viewer(request: HttpRequest):
    """The session user, or the API token's user (so video_url works with Bearer too)."""
    if request.user.is_authenticated:
        return request.user
    from rest_framework.request import Request

    from accounts.authentication import BearerTokenAuthentication

    try:
        result = BearerTokenAuthentication().authenticate(Request(request))
    except Exception:
        return None
    return result[0] if result else None


def _visible_generation(request: HttpRequest, pk: UUID) -> Generation:
    viewer = _viewer(request)
    if viewer is None:
        raise Http404
    generation = get_object_or_404(Generation.objects.visible_to(viewer), pk=pk)
    staff = viewer.is_staff and viewer.has_perm("generations.view_generation")
    if generation.is_hidden and not staff:
        raise Http404  # removed by moderation: staff still see it, its owner no longer
    return generation


def generation_video(request: HttpRequest, pk: UUID) -> FileResponse:
    generation = _visible_generation(request, pk)
    if not generation.video:
        raise Http404
    return FileResponse(
        generation.video.open("rb"), content_type="video/mp4", filename=f"{generation.pk}.mp4"
    )


def generation_image(request: HttpRequest, pk: UUID) -> FileResponse:
    generation = _visible_generation(request, pk)
    if not generation.image:
        raise Http404
    return FileResponse(generation.image.open("rb"))


def signed_image(request: HttpRequest, token: str) -> FileResponse:
    """An uploaded input image for fal, by a signed token that expires (no session)."""
    from generations.services import generation_for_signed_image

    generation = generation_for_signed_image(token)
    if generation is None or not generation.image or generation.is_final:
        raise Http404
    return FileResponse(generation.image.open("rb"))
