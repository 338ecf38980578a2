"""Input images reach fal the way fal expects: an upload goes to fal's own storage through
fal-client and the submit carries that URL; a user's URL goes as given; never a data: URI.
Real fal-client against the fake fal's queue and storage (tests/fakefal/storage.py)."""

from __future__ import annotations

import ssl

import httpx
import pytest
from django.utils import timezone

from accounts.models import CreditAccount, LedgerEntry
from generations import services
from generations.models import Generation
from tests.factories import REQUEST_BODY, image_upload
from tests.fakefal import FakeFal

pytestmark = pytest.mark.django_db

PUBLIC = "https://veo.example.com"


@pytest.fixture
def fal(real_fal) -> FakeFal:
    """The real gateway against the fake; jobs stay queued (no webhook leaves the fake,
    the site is not public)."""
    return real_fal(queue_seconds=60)


def accept_upload(user, **image) -> Generation:
    return services.accept(
        user=user, params={**REQUEST_BODY, "image_url": ""}, image_file=image_upload(**image)
    ).generation


def submitted_image_urls(fal: FakeFal) -> list[str]:
    urls = [r.body["image_url"] for r in fal.requests("submit")]
    assert not [u for u in urls if u.startswith("data:")], "a data: URI reached fal"
    return urls


def stored_bytes(generation: Generation) -> bytes:
    with generation.image.open("rb") as file:
        return file.read()


@pytest.mark.parametrize(
    ("fmt", "content_type", "file_name"),
    [("PNG", "image/png", "input.png"), ("JPEG", "image/jpeg", "input.jpg")],
)
def test_uploaded_image_goes_to_fal_storage_and_the_submit_carries_its_url(
    user, fal, settings, fmt, content_type, file_name
):
    # The client calls every file photo.jpg: the type fal gets comes from the bytes.
    generation = accept_upload(user, fmt=fmt, name="photo.jpg", content_type="image/jpeg")

    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "queued"
    [upload] = fal.uploads()
    assert (upload.content_type, upload.file_name, upload.via) == (content_type, file_name, "cdn")
    assert upload.data == stored_bytes(generation)
    # fal deletes it an hour after the generation's deadline.
    lifetime = upload.lifecycle["expiration_duration_seconds"]
    assert (
        settings.GENERATION_DEADLINE_SECONDS
        < lifetime
        <= settings.GENERATION_DEADLINE_SECONDS + 3600
    )
    assert submitted_image_urls(fal) == [upload.url]
    trust = ssl.create_default_context(cafile=fal.ca_pem_path)
    fetched = httpx.get(upload.url, verify=trust)  # what fal's runner would do
    assert (fetched.content, fetched.headers["content-type"]) == (upload.data, content_type)


def test_resubmit_reuses_the_image_already_on_fal_storage(user, fal):
    generation = accept_upload(user, fmt="PNG", name="input.png", content_type="image/png")
    fal.fail_next("submit", 500)

    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.status == "pending"  # retried later, like any 5xx
    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "queued"
    [upload] = fal.uploads()
    assert submitted_image_urls(fal) == [upload.url, upload.url]


def test_failed_cdn_upload_falls_back_to_fal_gcs_upload(user, fal):
    services.submit(
        generation_id=accept_upload(user, fmt="PNG").pk
    )  # the client now holds a CDN token
    fal.fail_next("upload", 500)  # the next storage request: the CDN upload itself

    generation = accept_upload(user, fmt="JPEG")
    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "queued"
    first, second = fal.uploads()
    assert (second.via, second.content_type) == ("gcs", "image/jpeg")
    assert submitted_image_urls(fal) == [first.url, second.url]


def test_storage_down_on_a_public_site_sends_a_signed_url_instead(user, fal, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    fal.configure(faults={"upload": {"500": 1.0}})
    generation = accept_upload(user, fmt="PNG")

    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "queued"
    assert fal.uploads() == []
    [url] = submitted_image_urls(fal)
    assert url.startswith(f"{PUBLIC}/media/signed/")
    token = url.rstrip("/").rsplit("/", 1)[-1]
    assert services.generation_for_signed_image(token) == generation


def test_storage_down_without_public_site_leaves_the_generation_pending_with_backoff(user, fal):
    fal.configure(faults={"upload": {"500": 1.0}})
    generation = accept_upload(user, fmt="PNG")

    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "pending"
    assert generation.next_poll_at > timezone.now()  # backoff
    assert (generation.error_code, generation.fal_request_id) == ("", "")
    assert fal.requests("submit") == []  # fal never got the job, nor a data: URI
    assert list(
        LedgerEntry.objects.filter(generation=generation).values_list("kind", flat=True)
    ) == ["hold"]  # nothing charged, nothing released
    assert CreditAccount.objects.get(user=user).reserved == generation.cost_credits

    fal.configure(faults={})  # storage is back: the next submit goes through
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.status == "queued"
    [upload] = fal.uploads()
    assert submitted_image_urls(fal) == [upload.url]


def test_storage_that_does_not_answer_in_time_is_retried_later(user, fal, settings):
    settings.FAL_HTTP_TIMEOUT = 1.0  # the upload is bounded at 2 x this
    fal.fail_next("upload", "slow", seconds=4)
    generation = accept_upload(user, fmt="PNG")

    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "pending"
    assert fal.requests("submit") == []


def test_image_url_from_the_user_goes_to_fal_unchanged(user, fal):
    generation = services.accept(user=user, params=REQUEST_BODY).generation

    services.submit(generation_id=generation.pk)

    assert submitted_image_urls(fal) == [REQUEST_BODY["image_url"]]
    assert fal.requests("upload") == []  # fal fetches it; we neither fetch nor upload it


def test_simulated_backend_stands_in_for_storage_without_sending_anything(user):
    generation = accept_upload(user, fmt="PNG")

    url = services.fal_arguments(generation)["image_url"]

    assert url.startswith("simulated:uploads/") and url.endswith("/input.png")
    assert services.fal_arguments(generation)["image_url"] == url
