"""Private media: a generation's video and input images, for its owner and staff only.

Every file goes out through `_media_response`, with headers that make it an image or a
video and nothing else, whatever bytes it holds: a type we set from what we stored (never
from a client's filename), no sniffing, a sandboxing CSP (a browser that opens it as a
page runs no script and has no origin), no caching on the way, and a filename of ours.
Django streams it with byte ranges and validators (`veoproject/ranges.py`: players seek,
and Safari plays no MP4 without Range), or, with `MEDIA_ACCEL=nginx`, leaves the bytes to
nginx, or, with S3 storage (`STORAGE=s3`), redirects to a URL the bucket answers for a
few minutes with the same type and filename; the access check is Django's in every mode.
"""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.utils import validate_file_name
from django.db.models.fields.files import FieldFile
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.http import content_disposition_header

from accounts.middleware import staff_session_trusted
from accounts.models import User
from generations import images
from generations.models import Generation, GenerationImage
from veoproject import ranges, storage

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
    elif viewer.is_staff and not staff_session_trusted(request, viewer):
        # A staff password alone (no code where the admin asks for one) opens only one's
        # own files, as for a token.
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


def _media_response(
    request: HttpRequest,
    generation: Generation,
    field: FieldFile,
    content_type: str,
    *,
    stem: str | None = None,
) -> HttpResponseBase:
    """The one way a stored file leaves, after the caller's access check: see the module
    docstring. The ways of sending the bytes part here: S3 storage redirects to a presigned
    URL; `MEDIA_ACCEL=nginx` hands them to nginx; otherwise Django streams them."""
    filename = f"{stem or generation.pk}.{EXTENSIONS[content_type]}"
    presigned = storage.presigned_url(
        field.storage,
        field.name or "",
        content_type=content_type,
        filename=filename,
        cache_control=MEDIA_HEADERS["Cache-Control"],
        method="HEAD" if request.method == "HEAD" else "GET",
    )
    if presigned is not None:
        return _presigned_redirect(presigned)
    if settings.MEDIA_ACCEL == "nginx":
        return _accel_response(field, content_type=content_type, filename=filename)
    try:
        file = field.storage.open(field.name or "", "rb")
    except FileNotFoundError:
        raise Http404 from None  # its row outlived the file: gone, not a server error
    return ranges.file_response(
        request,
        file,
        content_type=content_type,
        filename=filename,
        headers=MEDIA_HEADERS,
    )


def _presigned_redirect(url: str) -> HttpResponseRedirect:
    """302 to the bucket. The signature fixes the type, the disposition (inline, our
    filename) and no-store on the bucket's answer; the bucket is another origin, so the
    file never runs in ours. The redirect itself is private and never cached: its URL
    expires, and belongs to this viewer."""
    response = HttpResponseRedirect(url)
    response["Referrer-Policy"] = "no-referrer"
    for header, value in MEDIA_HEADERS.items():
        response[header] = value
    return response


def _accel_response(field: FieldFile, *, content_type: str, filename: str) -> HttpResponse:
    """No body: nginx sends the file from its `internal` location (Range and validators
    included) with these headers; the README's config passes the security ones on."""
    name = field.name or ""
    try:
        validate_file_name(name, allow_relative_path=True)
    except SuspiciousFileOperation:
        raise Http404 from None  # never let a stored name point nginx outside the media
    response = HttpResponse(content_type=content_type)
    response["X-Accel-Redirect"] = settings.MEDIA_ACCEL_PREFIX + quote(name, safe="/")
    response["Content-Disposition"] = content_disposition_header(False, filename) or ""
    for header, value in MEDIA_HEADERS.items():
        response[header] = value
    return response


def generation_video(request: HttpRequest, pk: UUID) -> HttpResponseBase:
    generation = _visible_generation(request, pk)
    if not generation.video:
        raise Http404
    return _media_response(request, generation, generation.video, VIDEO_CONTENT_TYPE)


def generation_image(request: HttpRequest, pk: UUID) -> HttpResponseBase:
    generation = _visible_generation(request, pk)
    if not generation.image:
        raise Http404
    return _media_response(
        request, generation, generation.image, _image_content_type(generation.image)
    )


def input_image_paths(generation: Generation) -> list[tuple[GenerationImage, str | None]]:
    """Each of the images of a model that takes several (`generation.input_images`, in
    their order: slot, position), with the path an upload is served at, the n-th at
    `.../images/<n>/`; None for one given by URL (its URL is the one to show)."""
    return [
        (image, reverse("generation-input-image", args=[generation.pk, number]))
        if image.image
        else (image, None)
        for number, image in enumerate(generation.input_images.all())
    ]


def generation_input_image(request: HttpRequest, pk: UUID, number: int) -> HttpResponseBase:
    """An uploaded first or last frame or reference image: the n-th of
    `input_image_paths`, with the same access check and headers as the input image."""
    generation = _visible_generation(request, pk)
    images = list(generation.input_images.all())
    if number >= len(images) or not images[number].image:
        raise Http404
    field = images[number].image
    return _media_response(
        request, generation, field, _image_content_type(field), stem=f"{generation.pk}-{number}"
    )


def signed_image(request: HttpRequest, token: str) -> HttpResponseBase:
    """An uploaded input image for fal, by a signed token that expires (no session)."""
    from generations.services import generation_for_signed_image

    generation = generation_for_signed_image(token)
    if generation is None or not generation.image or generation.is_final:
        raise Http404
    return _media_response(
        request, generation, generation.image, _image_content_type(generation.image)
    )
