"""Bodies too large, too many fields, broken headers, oversized uploads (issue 10, low).

Each route answers such a request with 413 (or 400) in our error shape, never a 500, and
the portal refuses an oversized upload before any of it is written to memory or disk.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.test import Client
from django.urls import reverse

from accounts import tokens
from generations.models import Generation

pytestmark = pytest.mark.django_db

WEBHOOK = f"/webhooks/fal/?generation={uuid.uuid4()}"
API_CREATE = "/api/v1/generations/"
FORM = {"prompt": "A lighthouse", "aspect_ratio": "16:9", "duration": "4s", "resolution": "720p"}


@pytest.fixture
def anonymous() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def member(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.fixture
def token_client(user) -> Client:
    _, raw = tokens.create_token(user=user, name="limits")
    return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {raw}")


def assert_too_large(response, *, json_body: bool) -> None:
    assert response.status_code == 413, response.content[:500]
    if json_body:
        assert response.json()["error"]["code"] == "request_too_large"
    else:
        assert "Too large" in response.content.decode()


def test_a_body_over_the_limit_is_413_on_every_route(settings, anonymous, member, token_client):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    form = {"prompt": "x" * 5000, "username": "a", "password": "b"}
    assert_too_large(member.post(reverse("studio"), form), json_body=False)
    assert_too_large(anonymous.post("/admin/login/", form), json_body=False)
    assert_too_large(anonymous.post("/login/", form), json_body=False)
    raw_json = json.dumps({"prompt": "x" * 5000})
    assert_too_large(
        anonymous.post(WEBHOOK, raw_json, content_type="application/json"), json_body=True
    )
    assert_too_large(
        token_client.post(API_CREATE, raw_json, content_type="application/json"), json_body=True
    )
    assert not Generation.objects.exists()


def test_too_many_form_fields_to_the_api_is_413_not_500(settings, token_client):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = "&".join(f"f{i}=1" for i in range(50))
    response = token_client.post(
        API_CREATE, fields, content_type="application/x-www-form-urlencoded"
    )
    assert_too_large(response, json_body=True)


def test_too_many_files_to_the_api_is_413_not_500(settings, token_client):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    files = {f"image{i}": SimpleUploadedFile(f"{i}.png", b"x") for i in range(5)}
    response = token_client.post(API_CREATE, {"prompt": "x", **files})
    assert_too_large(response, json_body=True)


def test_too_many_query_parameters_to_the_api_is_414_not_500(settings, token_client):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    query = "&".join(f"status={i}" for i in range(50))
    response = token_client.get(f"{API_CREATE}?{query}")
    assert response.status_code == 414
    assert response.json()["error"]["code"] == "uri_too_long"


def test_a_broken_content_length_to_the_webhook_is_400_not_500(anonymous):
    response = anonymous.post(WEBHOOK, b"{}", content_type="application/json", CONTENT_LENGTH="ten")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


def test_a_malformed_multipart_body_is_400_not_500(token_client):
    response = token_client.post(
        API_CREATE,
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n@@@@@\r\n--b--\r\n",
        content_type="multipart/form-data; boundary=b",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("bad_request", "parse_error")


# --- An oversized upload never reaches memory or disk ------------------------------------


class StorageWitness(FileUploadHandler):
    """Stands where Django stores an upload (the memory and temporary-file handlers come
    right after it) and counts the bytes that would be stored."""

    received: list[int] = []

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received.append(0)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.received[-1] += len(raw_data)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


@pytest.fixture
def stored_bytes(settings) -> list[int]:
    """Bytes of each uploaded file that reached Django's storing handlers."""
    handlers = list(settings.FILE_UPLOAD_HANDLERS)
    first_storing = next(
        i for i, h in enumerate(handlers) if h.startswith("django.core.files.uploadhandler.")
    )
    handlers.insert(first_storing, f"{__name__}.StorageWitness")
    settings.FILE_UPLOAD_HANDLERS = handlers
    StorageWitness.received = []
    return StorageWitness.received


def studio_post(member: Client, size: int):
    image = SimpleUploadedFile("big.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * size, "image/png")
    form = {**FORM, "image": image}
    return member.post(reverse("studio"), form)


def test_portal_upload_far_over_the_limit_is_refused_unread(settings, member, stored_bytes):
    settings.IMAGE_MAX_BYTES = 200_000
    response = studio_post(member, 1_000_000)
    assert_too_large(response, json_body=False)
    assert sum(stored_bytes) == 0
    assert not Generation.objects.exists()


def test_portal_upload_just_over_the_limit_stores_no_byte_past_it(settings, member, stored_bytes):
    settings.IMAGE_MAX_BYTES = 200_000
    response = studio_post(member, 220_000)
    assert response.status_code == 200
    assert "The image is too large" in " ".join(response.context["form"].errors["image"])
    assert max(stored_bytes) <= settings.IMAGE_MAX_BYTES
    assert not Generation.objects.exists()


def test_api_upload_just_over_the_limit_stores_no_byte_past_it(
    settings, token_client, stored_bytes
):
    settings.IMAGE_MAX_BYTES = 200_000
    image = SimpleUploadedFile("big.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 220_000, "image/png")
    response = token_client.post(API_CREATE, {"prompt": "A lighthouse", "image": image})
    assert response.status_code == 400
    assert "too large" in " ".join(response.json()["error"]["fields"]["image"])
    assert max(stored_bytes) <= settings.IMAGE_MAX_BYTES
