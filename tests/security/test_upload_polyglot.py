"""A stored script in an uploaded image (issue 10, critical).

The review uploaded a real PNG carrying HTML in a text chunk as `poc.html`; it was stored
under that name and served back as text/html, and a staff member who opened it ran the
uploader's script on our origin. Uploads are now stored under our name, re-encoded, and
served as images no browser runs (headers: tests/security/test_media_headers.py).
"""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from accounts import tokens
from generations import services
from generations.models import Generation
from tests.security.polyglot import has_gps, jpeg_with_gps, polyglot_png

pytestmark = pytest.mark.django_db

FORM = {
    "prompt": "A paper boat drifting down a rainy street, soft light",
    "aspect_ratio": "16:9",
    "duration": "4s",
    "resolution": "720p",
}


def stored_bytes(generation: Generation) -> bytes:
    with generation.image.open("rb") as file:
        return file.read()


def stored_basename(generation: Generation) -> str:
    return generation.image.name.rsplit("/", 1)[-1]


def upload_through_the_portal(client, user, data: bytes, name: str) -> Generation:
    client.force_login(user)
    upload = SimpleUploadedFile(name, data, content_type="text/html")
    response = client.post(reverse("studio"), {**FORM, "image": upload})
    assert response.status_code == 302, response.content.decode()[:2000]
    return Generation.objects.filter(owner=user).latest("created_at")


def upload_through_the_api(user, data: bytes, name: str) -> Generation:
    _, raw = tokens.create_token(user=user, name="attacker")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    upload = SimpleUploadedFile(name, data, content_type="text/html")
    response = api.post("/api/v1/generations/", {**FORM, "image": upload}, format="multipart")
    assert response.status_code == 201, response.json()
    return Generation.objects.get(pk=response.json()["id"])


def assert_only_an_image_is_kept(generation: Generation) -> None:
    assert stored_basename(generation) == "input.png"
    data = stored_bytes(generation)
    assert b"<script" not in data and b"<html" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.size == (1280, 720)
        assert "Comment" not in image.info  # the tEXt chunk is gone
        assert image.getpixel((0, 0)) == (30, 120, 200)  # the picture is not


def test_polyglot_png_named_poc_html_through_the_portal_is_stored_as_our_png_without_script(
    client, user
):
    generation = upload_through_the_portal(client, user, polyglot_png(), "poc.html")
    assert_only_an_image_is_kept(generation)


def test_polyglot_png_named_poc_html_through_the_api_is_stored_as_our_png_without_script(user):
    generation = upload_through_the_api(user, polyglot_png(), "poc.html")
    assert_only_an_image_is_kept(generation)


def test_polyglot_upload_is_served_as_a_png_no_browser_runs(client, user):
    generation = upload_through_the_portal(client, user, polyglot_png(), "poc.html")
    response = client.get(reverse("generation-image", args=[generation.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Disposition"] == f'inline; filename="{generation.pk}.png"'
    assert b"<script" not in b"".join(response.streaming_content)


def test_exif_gps_of_an_uploaded_photo_is_stripped_before_anything_reaches_fal(
    client, user, settings
):
    settings.PUBLIC_BASE_URL = "https://veo.example.com"
    photo = jpeg_with_gps()
    assert has_gps(photo)
    generation = upload_through_the_portal(client, user, photo, "holiday.jpg")

    assert stored_basename(generation) == "input.jpg"
    stored = stored_bytes(generation)
    assert not has_gps(stored)
    assert b"PhoneMaker" not in stored and b"<script" not in stored
    # fal reads the file we stored: its signed URL serves exactly those bytes.
    token = services.signed_image_token(generation)
    response = client.get(reverse("generation-image-signed", args=[token]))
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == stored


def test_exif_orientation_is_applied_before_it_is_stripped(user):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    Image.new("RGB", (1280, 720), (10, 10, 10)).save(buffer, format="JPEG", exif=exif)
    upload = SimpleUploadedFile("phone.jpg", buffer.getvalue(), content_type="image/jpeg")
    params = {**FORM, "generate_audio": False}
    generation = services.accept(user=user, params=params, image_file=upload).generation
    with Image.open(io.BytesIO(stored_bytes(generation))) as image:
        assert image.size == (720, 1280)
        assert 0x0112 not in image.getexif()


@pytest.mark.parametrize("name", ["é" * 200 + ".png", "写真" * 100 + ".png"])
def test_a_200_character_non_ascii_filename_is_never_a_500(client, user, name):
    generation = upload_through_the_portal(client, user, polyglot_png(), name)
    assert stored_basename(generation) == "input.png"
    generation = upload_through_the_api(user, polyglot_png(), name)
    assert stored_basename(generation) == "input.png"
