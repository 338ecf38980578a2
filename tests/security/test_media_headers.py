"""Media responses that a browser could run, sniff or a CDN could keep (issue 10).

Every media response (video, input image, the signed image URL fal fetches) has a type we
set, no sniffing, a sandboxing CSP, no caching and a filename of ours, also for an image
stored under its client's name before uploads were renamed.
"""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from accounts import tokens
from generations import services
from generations.models import Generation
from tests.factories import GenerationFactory
from tests.security.polyglot import HTML_PAYLOAD, polyglot_png

pytestmark = pytest.mark.django_db

SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-store",
}


def with_file(generation: Generation, field: str, name: str, data: bytes) -> Generation:
    getattr(generation, field).save(name, ContentFile(data))
    if field == "image":
        Generation.objects.filter(pk=generation.pk).update(image_url="")
    generation.refresh_from_db()
    return generation


def assert_safe_media(response, *, content_type: str, filename: str) -> None:
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    for header, value in SAFE_HEADERS.items():
        assert response[header] == value, header
    assert response["Content-Disposition"] == f'inline; filename="{filename}"'


def test_private_video_is_served_sandboxed_and_never_cached(client, user):
    generation = with_file(
        GenerationFactory(owner=user, status="succeeded"), "video", "v.mp4", b"\x00\x00mp4"
    )
    client.force_login(user)
    response = client.get(reverse("generation-video", args=[generation.pk]))
    assert_safe_media(response, content_type="video/mp4", filename=f"{generation.pk}.mp4")


def test_image_stored_under_a_clients_html_name_is_served_as_what_pillow_reads(client, user):
    # An upload stored before uploads were renamed keeps its client's name: its type comes
    # from its bytes, never from ".html".
    generation = with_file(GenerationFactory(owner=user), "image", "poc.html", polyglot_png())
    assert generation.image.name.endswith("poc.html")
    client.force_login(user)
    response = client.get(reverse("generation-image", args=[generation.pk]))
    assert_safe_media(response, content_type="image/png", filename=f"{generation.pk}.png")


def test_stored_file_that_is_no_image_is_never_served_as_a_page(client, user):
    generation = with_file(GenerationFactory(owner=user), "image", "x.html", HTML_PAYLOAD.encode())
    client.force_login(user)
    response = client.get(reverse("generation-image", args=[generation.pk]))
    assert response.status_code == 404
    assert HTML_PAYLOAD.encode() not in response.content


def test_signed_image_url_for_fal_is_served_sandboxed_and_never_cached(client, user):
    generation = with_file(GenerationFactory(owner=user), "image", "poc.html", polyglot_png())
    token = services.signed_image_token(generation)
    response = client.get(reverse("generation-image-signed", args=[token]))
    assert_safe_media(response, content_type="image/png", filename=f"{generation.pk}.png")


def test_media_fetched_with_an_api_token_has_the_same_headers(client, user):
    generation = with_file(
        GenerationFactory(owner=user, status="succeeded"), "video", "v.mp4", b"\x00\x00mp4"
    )
    _, raw = tokens.create_token(user=user, name="player")
    response = client.get(
        reverse("generation-video", args=[generation.pk]), HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert_safe_media(response, content_type="video/mp4", filename=f"{generation.pk}.mp4")
