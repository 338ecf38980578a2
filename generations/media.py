"""Private media: a generation's video and input image, for its owner and staff only.

Every file goes out through `_media_response`, with headers that make it an image or a
video and nothing else, whatever bytes it holds: a type we set from what we stored (never
from a client's filename), no sniffing, a sandboxing CSP (a browser that opens it as a
page runs no script and has no origin), no caching on the way, and a filename of ours.
"""

from __future__ import annotations

from uuid import UUID

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404

from accounts.models import User
from generations import images
from generations.models import Generation

VIDEO_CONTENT_TYPE = "video/mp4"
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "video/mp4": "mp4"}
MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    # Private media: a CDN or proxy must never keep a copy, nor a shared browser cache.
    "Cache-Control": "private, no-store",
}


def _viewer(request: HttpRequest) -> tuple[User | None, bool]:
    """The session user, or the API token's user (so video_url works with Bearer too);
    and whether it is the token's."""
    if request.user.is_authenticated:
        return request.user, False
    from rest_framework.request import Request

    from accounts.authentication import BearerTokenAuthentication

    try:
        result = BearerTokenAuthentication().authenticate(Request(request))
    except Exception:
        return None, False
    return (result[0], True) if result else (None, False)


def _visible_generation(request: HttpRequest, pk: UUID) -> Generation:
    viewer, by_token = _viewer(request)
    if viewer is None:
        raise Http404
    if by_token:
        # An API token acts for its owner only, staff or not: staff look at other people's
        # media through their browser session (the admin), so a leaked staff token opens
        # nobody else's files.
        generations, staff = Generation.objects.filter(owner=viewer), False
    else:
        generations = Generation.objects.visible_to(viewer)
        staff = viewer.is_staff and viewer.has_perm("generations.view_generation")
    generation = get_object_or_404(generations, pk=pk)
    if generation.is_hidden and not staff:
        raise Http404  # removed by moderation: staff still see it, its owner no longer
    return generation


def _image_content_type(field: FieldFile) -> str:
    """From the name we stored it under; an image stored under its client's name (before
    uploads were renamed) is asked of Pillow, never of its extension."""
    content_type = images.content_type_of_stored(field.name or "")
    if content_type is None:
        with field.open("rb") as file:
            content_type = images.sniff_content_type(file)
    if content_type is None:
        raise Http404
    return content_type


def _media_response(generation: Generation, field: FieldFile, content_type: str) -> FileResponse:
    """The one way a stored file leaves: see the module docstring."""
    response = FileResponse(
        field.open("rb"),
        content_type=content_type,
        filename=f"{generation.pk}.{EXTENSIONS[content_type]}",
    )
    for header, value in MEDIA_HEADERS.items():
        response[header] = value
    return response


def generation_video(request: HttpRequest, pk: UUID) -> FileResponse:
    generation = _visible_generation(request, pk)
    if not generation.video:
        raise Http404
    return _media_response(generation, generation.video, VIDEO_CONTENT_TYPE)


def generation_image(request: HttpRequest, pk: UUID) -> FileResponse:
    generation = _visible_generation(request, pk)
    if not generation.image:
        raise Http404
    return _media_response(generation, generation.image, _image_content_type(generation.image))


def signed_image(request: HttpRequest, token: str) -> FileResponse:
    """An uploaded input image for fal, by a signed token that expires (no session)."""
    from generations.services import generation_for_signed_image

    generation = generation_for_signed_image(token)
    if generation is None or not generation.image or generation.is_final:
        raise Http404
    return _media_response(generation, generation.image, _image_content_type(generation.image))
