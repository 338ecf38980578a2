"""Uploaded images with S3 storage: stored in the bucket (nothing on disk), private, and sent
to fal through fal's storage, or, when that is down, as a presigned URL of the bucket
(real fal-client against the fake fal; moto on loopback)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from generations import services
from generations.models import Generation
from generations.services.retrying import accept_again
from tests.credits import numbers
from tests.factories import REQUEST_BODY, image_upload
from tests.fakefal import FakeFal
from tests.s3.conftest import BUCKET, MotoS3
from veoproject import storage
from veoproject.exceptions import StorageError

pytestmark = pytest.mark.django_db

GENERATIONS = "/api/v1/generations/"


@pytest.fixture
def fal(real_fal) -> FakeFal:
    """The real gateway against the fake; jobs stay queued (no webhook leaves the fake,
    the site is not public)."""
    return real_fal(queue_seconds=60)


def accept_upload(user) -> Generation:
    return services.accept(
        user=user,
        params={**REQUEST_BODY, "image_url": ""},
        image_file=image_upload(fmt="PNG", name="photo.jpg", content_type="image/jpeg"),
    ).generation


def test_an_api_upload_is_stored_in_the_bucket_not_on_disk(api, s3: MotoS3, settings):
    response = api.post(
        GENERATIONS,
        {**REQUEST_BODY, "image_url": "", "image": image_upload(fmt="PNG", name="x.jpg")},
        format="multipart",
    )

    assert response.status_code == 201, response.json()
    generation = Generation.objects.get(pk=response.json()["id"])
    name = generation.image.name
    assert name == f"private/inputs/{generation.owner_id}/{generation.pk}/input.png"
    assert s3.keys() == [name]
    assert s3.read(name).startswith(b"\x89PNG")
    assert s3.head(name)["ContentType"] == "image/png"
    assert not settings.MEDIA_ROOT.exists() or list(settings.MEDIA_ROOT.rglob("*")) == []


def test_stored_objects_are_private(s3: MotoS3, user):
    generation = accept_upload(user)

    grants = s3.client.get_object_acl(Bucket=BUCKET, Key=generation.image.name)["Grants"]
    assert [grant["Grantee"].get("URI") for grant in grants] == [None]  # the owner alone
    anonymous = httpx.get(f"{s3.endpoint_url}/{BUCKET}/{generation.image.name}")
    assert anonymous.status_code == 403


def test_fal_gets_the_image_from_its_own_storage(s3: MotoS3, fal: FakeFal, user):
    generation = accept_upload(user)

    services.submit(generation_id=generation.pk)

    [upload] = fal.uploads()
    assert upload.data == s3.read(generation.image.name)
    assert [r.body["image_url"] for r in fal.requests("submit")] == [upload.url]


def test_fal_storage_down_sends_a_presigned_url_of_the_bucket(s3: MotoS3, fal: FakeFal, user):
    fal.configure(faults={"upload": {"500": 1.0}})
    generation = accept_upload(user)

    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "queued"  # no public site needed: the bucket serves it
    assert fal.uploads() == []
    [url] = [r.body["image_url"] for r in fal.requests("submit")]
    assert url.startswith(f"{s3.endpoint_url}/{BUCKET}/{generation.image.name}?")
    # Valid while fal may still start the job, as the signed view's link was.
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["7200"]
    fetched = httpx.get(url)  # what fal's runner does with it
    assert fetched.content == s3.read(generation.image.name)
    assert fetched.headers["Content-Type"] == "image/png"


def test_a_bucket_that_refuses_the_upload_is_a_503_and_nothing_is_charged(api, s3: MotoS3, user):
    s3.faults.fail_next(method="PUT", times=storage.S3_ATTEMPTS)
    before = numbers(user)

    response = api.post(
        GENERATIONS,
        {**REQUEST_BODY, "image_url": "", "image": image_upload(fmt="PNG", name="x.jpg")},
        format="multipart",
    )

    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "storage_unavailable"
    assert "nothing was charged" in error["message"].lower()
    assert "SlowDown" not in error["message"]  # the raw cause is for the logs
    assert not Generation.objects.exists()
    assert numbers(user) == before
    assert s3.keys() == []


def test_try_again_while_the_bucket_is_down_is_a_503_that_holds_nothing(s3: MotoS3, user):
    source = services.accept(
        user=user,
        params={**REQUEST_BODY, "image_url": ""},
        image_file=image_upload(fmt="PNG", name="photo.png"),
    ).generation
    before = numbers(user)
    s3.faults.fail_next(method="GET", status=500, code="InternalError", times=50)

    with pytest.raises(StorageError) as refused:
        accept_again(user=user, source_id=source.pk, params={**REQUEST_BODY, "image_url": ""})

    assert refused.value.http_status == 503 and "InternalError" not in refused.value.message
    assert Generation.objects.count() == 1
    assert numbers(user) == before
