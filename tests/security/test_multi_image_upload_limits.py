"""A request for a model with several image slots carries a full-size image in each (issue
15): first + last frame, or up to three references, in one multipart body, through the API
and the studio; a body larger than the model that takes the most allows is still 413."""

from __future__ import annotations

import io
import random

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from generations import catalogue
from generations.models import Generation
from tests.credits import numbers
from veoproject.uploads import images_per_request, upload_body_limit

pytestmark = pytest.mark.django_db

GENERATIONS = "/api/v1/generations/"
FLF = "fal-ai/veo3.1/first-last-frame-to-video"
REF = "fal-ai/veo3.1/reference-to-video"


@pytest.fixture(autouse=True)
def _no_limits(settings):
    settings.API_CREATE_RATE = None
    settings.MAX_IN_FLIGHT_PER_USER = 0


@pytest.fixture(scope="module")
def full_size_jpeg() -> bytes:
    """A valid 720p JPEG of noise: large (several hundred KB), since noise does not compress."""
    rng = random.Random(15)
    noise = bytes(rng.getrandbits(8) for _ in range(1280 * 720 * 3))
    buffer = io.BytesIO()
    Image.frombytes("RGB", (1280, 720), noise).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def image_max(settings, full_size_jpeg) -> int:
    """IMAGE_MAX_BYTES set to the test image's size: each upload is as large as allowed."""
    settings.IMAGE_MAX_BYTES = len(full_size_jpeg)
    return settings.IMAGE_MAX_BYTES


def uploads(data: bytes, count: int) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(f"{i}.jpg", data, content_type="image/jpeg") for i in range(count)]


def test_the_limit_is_the_model_that_takes_the_most_images(settings):
    assert images_per_request() == catalogue.MAX_REFERENCES == 3
    assert upload_body_limit() > 3 * settings.IMAGE_MAX_BYTES
    assert upload_body_limit() < 4 * settings.IMAGE_MAX_BYTES


def test_the_api_takes_three_full_size_references_in_one_request(api, image_max, full_size_jpeg):
    assert image_max > 300_000  # the test means something: 3 images are far over one's limit
    response = api.post(
        GENERATIONS,
        {"model": REF, "prompt": "A cat in a hat", "reference_images": uploads(full_size_jpeg, 3)},
        format="multipart",
    )
    assert response.status_code == 201, response.content[:500]
    generation = Generation.objects.get(pk=response.json()["id"])
    assert [bool(image.image) for image in generation.input_images.all()] == [True] * 3


def test_the_api_refuses_more_than_the_largest_model_takes_with_413(
    api, user, image_max, full_size_jpeg
):
    response = api.post(
        GENERATIONS,
        {"model": REF, "prompt": "A cat in a hat", "reference_images": uploads(full_size_jpeg, 4)},
        format="multipart",
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert not Generation.objects.exists()
    assert numbers(user) == (1000, 0)


def test_the_studio_takes_a_full_size_first_and_last_frame(client, user, image_max, full_size_jpeg):
    client.force_login(user)
    first, last = uploads(full_size_jpeg, 2)
    response = client.post(
        reverse("studio"),
        {
            "prompt": "The lake freezes over",
            "model": FLF,
            "aspect_ratio": "auto",
            "duration": "8s",
            "resolution": "720p",
            "first_frame": first,
            "last_frame": last,
        },
    )
    assert response.status_code == 302, response.content[:500]
    generation = Generation.objects.get(owner=user)
    assert sorted(generation.input_images.values_list("slot", flat=True)) == [
        "first_frame_url",
        "last_frame_url",
    ]


def test_the_studio_refuses_a_body_over_the_largest_model_with_413(user, image_max, full_size_jpeg):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    response = client.post(
        reverse("studio"),
        {"prompt": "x", "model": REF, "reference_images": uploads(full_size_jpeg, 4)},
    )
    assert response.status_code == 413
    assert "Too large" in response.content.decode()
    assert not Generation.objects.exists()
