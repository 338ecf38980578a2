"""Uploaded first/last frames and references are served back (issue 15): their URL is in
the generation's JSON and on its page, and they leave through the one access-checked media
path (owner or trusted staff; our headers, Range, MEDIA_ACCEL), like the input image."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import tokens
from generations import moderation
from generations.models import Generation, GenerationImage
from tests.factories import GenerationFactory, UserFactory, image_upload

pytestmark = pytest.mark.django_db

GENERATIONS = "/api/v1/generations/"
REF = "fal-ai/veo3.1/reference-to-video"
HAT_URL = "https://images.example.com/hat.jpg"
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-store",
}


@pytest.fixture(autouse=True)
def _no_limits(settings):
    settings.API_CREATE_RATE = None
    settings.MAX_IN_FLIGHT_PER_USER = 0


def token_client(user) -> APIClient:
    _, raw = tokens.create_token(user=user, name="media")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def created(api) -> dict:
    """A reference-to-video generation made through the API: two uploads and one URL."""
    response = api.post(
        GENERATIONS,
        {
            "model": REF,
            "prompt": "A cat in a hat",
            "reference_images": [
                image_upload(name="a.jpg"),
                image_upload(name="b.png", fmt="PNG", content_type="image/png"),
            ],
            "image_urls": HAT_URL,
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def image_path(generation_id: str, number: int) -> str:
    return reverse("generation-input-image", args=[generation_id, number])


def test_the_json_names_each_uploaded_image_by_its_own_url(api, created):
    pk = created["id"]
    assert created["input_images"] == [
        {"field": "image_urls", "position": 0, "url": f"http://testserver{image_path(pk, 0)}"},
        {"field": "image_urls", "position": 1, "url": f"http://testserver{image_path(pk, 1)}"},
        {"field": "image_urls", "position": 2, "url": HAT_URL},
    ]
    assert image_path(pk, 1) == f"/media/generations/{pk}/images/1/"
    # The same in the detail and the list.
    assert api.get(f"{GENERATIONS}{pk}/").json()["input_images"] == created["input_images"]
    listed = api.get(GENERATIONS).json()["results"][0]
    assert listed["input_images"] == created["input_images"]


def test_the_owner_gets_each_upload_with_our_headers_and_ranges(api, created):
    generation = Generation.objects.get(pk=created["id"])
    stored = [image.image for image in generation.input_images.all()[:2]]
    for number, (content_type, extension) in enumerate(
        [("image/jpeg", "jpg"), ("image/png", "png")]
    ):
        response = api.get(created["input_images"][number]["url"])
        assert response.status_code == 200
        assert response["Content-Type"] == content_type
        for header, value in SAFE_HEADERS.items():
            assert response[header] == value, header
        assert response["Content-Disposition"] == (
            f'inline; filename="{generation.pk}-{number}.{extension}"'
        )
        body = b"".join(response.streaming_content)
        with stored[number].open("rb") as file:
            assert body == file.read()

    part = api.get(image_path(created["id"], 0), headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert len(b"".join(part.streaming_content)) == 10


def test_an_image_given_by_url_or_past_the_last_is_404(api, created):
    assert api.get(image_path(created["id"], 2)).status_code == 404  # the URL one
    assert api.get(image_path(created["id"], 3)).status_code == 404


def test_nobody_else_gets_them(client, created, other_user, staff_user):
    path = image_path(created["id"], 0)
    assert client.get(path).status_code == 404  # anonymous
    client.force_login(other_user)
    assert client.get(path).status_code == 404
    assert token_client(other_user).get(path).status_code == 404
    # A staff token acts for its own account only; staff look in a browser session.
    assert token_client(staff_user).get(path).status_code == 404
    client.force_login(staff_user)
    assert client.get(path).status_code == 200


def test_staff_without_the_view_permission_do_not_get_them(client, created):
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_creditaccount"))
    client.force_login(clerk)
    assert client.get(image_path(created["id"], 0)).status_code == 404


def test_a_generation_removed_by_moderation_hides_them_from_its_owner(api, created, staff_user):
    generation = Generation.objects.get(pk=created["id"])
    moderation.hide(generation=generation, actor=staff_user, reason="not allowed")
    assert api.get(image_path(created["id"], 0)).status_code == 404


def test_accel_mode_hands_them_to_nginx_after_the_check(settings, api, created):
    settings.MEDIA_ACCEL = "nginx"
    settings.MEDIA_ACCEL_PREFIX = "/protected-media/"
    stored = Generation.objects.get(pk=created["id"]).input_images.all()[0].image
    response = api.get(image_path(created["id"], 0))
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{stored.name}"
    assert response["Content-Type"] == "image/jpeg"
    for header, value in SAFE_HEADERS.items():
        assert response[header] == value, header


def test_the_page_shows_them(client, user, created):
    client.force_login(user)
    page = client.get(reverse("generation-detail", args=[created["id"]])).content.decode()
    assert 'data-testid="input-images"' in page
    assert f'<img src="{image_path(created["id"], 0)}"' in page
    assert f'<img src="{image_path(created["id"], 1)}"' in page
    assert f'href="{HAT_URL}"' in page


def test_the_admin_shows_them_read_only(client, staff_user, user):
    generation = GenerationFactory(owner=user, model=REF, image_url="")
    upload = GenerationImage(generation=generation, slot="first_frame_url", position=0)
    upload.image.save("first.jpg", ContentFile(image_upload().read()))
    GenerationImage.objects.create(
        generation=generation, slot="last_frame_url", position=0, image_url=HAT_URL
    )
    client.force_login(staff_user)
    page = client.get(reverse("admin:generations_generation_change", args=[generation.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert f'<img src="{image_path(str(generation.pk), 0)}"' in html
    assert f'href="{HAT_URL}"' in html
    assert 'name="input_images-0-slot"' not in html  # read-only: no form fields
    assert client.get(image_path(str(generation.pk), 0)).status_code == 200


def test_the_page_labels_the_frames(client, user):
    generation = GenerationFactory(
        owner=user, model="fal-ai/veo3.1/first-last-frame-to-video", image_url=""
    )
    upload = GenerationImage(generation=generation, slot="first_frame_url", position=0)
    upload.image.save("first.jpg", ContentFile(image_upload().read()))
    GenerationImage.objects.create(
        generation=generation, slot="last_frame_url", position=0, image_url=HAT_URL
    )
    client.force_login(user)
    page = client.get(reverse("generation-detail", args=[generation.pk])).content.decode()
    first = image_path(str(generation.pk), 0)
    assert f'First frame: <a href="{first}"><img src="{first}" alt="First frame"' in page
    assert f'Last frame: <a href="{HAT_URL}"' in page
