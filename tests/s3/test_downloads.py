"""Downloads with S3 storage: Django checks access, then redirects to a presigned URL of the
bucket (moto on loopback) whose answer carries our type, filename and no-store, followed
here with a real HTTP client; anyone else gets 404 and no URL."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from generations.models import Generation
from tests.factories import image_upload
from tests.s3.conftest import MotoS3
from veoproject import storage

pytestmark = pytest.mark.django_db

VIDEO = b"\x00\x00\x00\x18ftypmp42" + os.urandom(300_000)


@pytest.fixture
def finished(s3: MotoS3, user) -> Generation:
    """A succeeded generation whose video and input image are in the bucket."""
    generation = succeeded(user)
    generation.video.save("video.mp4", ContentFile(VIDEO), save=False)
    generation.image.save("input.png", image_upload(fmt="PNG", size=(64, 64)), save=False)
    generation.save()
    return generation


def succeeded(user, **fields) -> Generation:
    return Generation(
        owner=user,
        prompt="a boat",
        aspect_ratio="16:9",
        duration="8s",
        resolution="1080p",
        generate_audio=True,
        endpoint="fal-ai/veo3.1/image-to-video",
        cost_credits=320,
        status="succeeded",
        video_bytes=len(VIDEO),
        **fields,
    )


def video_url(generation: Generation) -> str:
    return reverse("generation-video", args=[generation.pk])


def test_the_owner_is_redirected_to_a_presigned_url_with_our_headers(
    client, user, finished, s3: MotoS3
):
    client.force_login(user)

    redirect = client.get(video_url(finished))

    assert redirect.status_code == 302
    assert redirect["Cache-Control"] == "private, no-store"
    location = redirect["Location"]
    assert location.startswith(f"{s3.endpoint_url}/veo-media-test/{finished.video.name}?")
    signed = parse_qs(urlsplit(location).query)
    assert signed["X-Amz-Expires"] == ["300"]  # minutes, not the hour django-storages defaults to
    answer = httpx.get(location)
    assert answer.status_code == 200
    assert answer.content == VIDEO
    assert answer.headers["Content-Type"] == "video/mp4"
    assert answer.headers["Content-Disposition"] == f'inline; filename="{finished.pk}.mp4"'
    assert answer.headers["Cache-Control"] == "private, no-store"


def test_a_player_seeks_in_the_bucket(client, user, finished):
    client.force_login(user)
    location = client.get(video_url(finished))["Location"]

    part = httpx.get(location, headers={"Range": "bytes=100-199"})

    assert part.status_code == 206
    assert part.content == VIDEO[100:200]


def test_head_gets_a_url_signed_for_head(client, user, finished):
    client.force_login(user)

    location = client.head(video_url(finished))["Location"]

    answer = httpx.head(location)
    assert answer.status_code == 200
    assert answer.headers["Content-Length"] == str(len(VIDEO))


def test_the_input_image_goes_out_as_an_image(client, user, finished, s3: MotoS3):
    client.force_login(user)

    redirect = client.get(reverse("generation-image", args=[finished.pk]))

    answer = httpx.get(redirect["Location"])
    assert answer.content == s3.read(finished.image.name)
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.headers["Content-Disposition"] == f'inline; filename="{finished.pk}.png"'


def test_another_user_gets_404_and_no_url(client, other_user, finished, bearer_client):
    client.force_login(other_user)

    refused = client.get(video_url(finished))

    assert refused.status_code == 404
    assert "Location" not in refused
    assert bearer_client(other_user).get(video_url(finished)).status_code == 404
    assert client.get(reverse("generation-image", args=[finished.pk])).status_code == 404


def test_without_login_there_is_no_url(client, finished):
    refused = client.get(video_url(finished))

    assert refused.status_code in (302, 404)
    assert "X-Amz-Signature" not in refused.get("Location", "")


def test_local_storage_still_streams_from_django(client, user, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(user)
    generation = succeeded(user, image_url="https://images.example.com/boat.jpg")
    generation.video.save("video.mp4", ContentFile(VIDEO))

    answer = client.get(video_url(generation))

    assert answer.status_code == 200
    assert b"".join(answer.streaming_content) == VIDEO
    assert (
        storage.presigned_url(
            generation.video.storage,
            generation.video.name,
            content_type="video/mp4",
            filename="x.mp4",
            cache_control="no-store",
        )
        is None
    )
