"""Video that plays everywhere (issue 14): media views answer byte ranges, conditional
requests and HEAD, stream only what is asked for, and hand the bytes to nginx with
MEDIA_ACCEL=nginx, always after Django's own access check."""

from __future__ import annotations

import io
import os

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils.http import http_date
from PIL import Image

from accounts import tokens
from generations import services
from generations.models import Generation
from tests.factories import GenerationFactory
from veoproject.ranges import ByteRange, RangeNotSatisfiable, parse_range

pytestmark = pytest.mark.django_db

# Every byte distinct enough that a slice from the wrong offset cannot pass for the right one.
VIDEO = bytes(range(256)) * 40 + os.urandom(7_000)
SIZE = len(VIDEO)
SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-store",
}


@pytest.fixture
def finished(user) -> Generation:
    generation = GenerationFactory(owner=user, status="succeeded")
    generation.video.save("v.mp4", ContentFile(VIDEO))
    generation.refresh_from_db()
    return generation


@pytest.fixture
def video_url(finished) -> str:
    return reverse("generation-video", args=[finished.pk])


@pytest.fixture
def owner_client(client, user):
    client.force_login(user)
    return client


def png() -> ContentFile:
    buffer = io.BytesIO()
    Image.new("RGB", (1280, 720), (40, 90, 160)).save(buffer, format="PNG")
    return ContentFile(buffer.getvalue())


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def assert_media_headers(response) -> None:
    for header, value in SAFE_HEADERS.items():
        assert response[header] == value, header
    assert response["Accept-Ranges"] == "bytes"


# --- Ranges ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=0-99", 0, 100),  # first bytes (Safari asks bytes=0-1 first)
        ("bytes=0-1", 0, 2),
        ("bytes=4000-5999", 4000, 6000),  # middle
        ("bytes=-500", SIZE - 500, SIZE),  # suffix
        ("bytes=9000-", 9000, SIZE),  # open-ended
        (f"bytes={SIZE - 10}-{SIZE + 1000}", SIZE - 10, SIZE),  # end past the file: clipped
        (f"bytes=-{SIZE * 3}", 0, SIZE),  # suffix longer than the file: all of it
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE),  # the last byte
    ],
)
def test_range_returns_exactly_the_bytes_asked_for(owner_client, video_url, header, start, stop):
    response = owner_client.get(video_url, headers={"Range": header})

    assert response.status_code == 206
    assert response.streaming  # read from the file as it is sent, never loaded whole
    assert body(response) == VIDEO[start:stop]
    assert response["Content-Range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert response["Content-Length"] == str(stop - start)
    assert response["Content-Type"] == "video/mp4"
    assert_media_headers(response)


def test_whole_file_answers_200_with_its_length_and_accept_ranges(owner_client, video_url):
    response = owner_client.get(video_url)

    assert response.status_code == 200
    assert body(response) == VIDEO
    assert response["Content-Length"] == str(SIZE)
    assert "Content-Range" not in response
    assert response["ETag"].startswith('"') and response["Last-Modified"]
    assert_media_headers(response)


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 50}-{SIZE + 60}", "bytes=-0"])
def test_range_past_the_end_is_416_with_the_size(owner_client, video_url, header):
    response = owner_client.get(video_url, headers={"Range": header})

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{SIZE}"
    assert response.json()["error"]["code"] == "range_not_satisfiable"
    assert VIDEO[:64] not in response.content
    assert_media_headers(response)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,5-6",  # several ranges: the whole file is allowed (RFC 9110 §14.2)
        "bytes=5-2",  # last before first: invalid, ignored
        "bytes=abc",
        "bytes=-",
        "items=0-5",
        "bytes=0-5 junk",
        "bytes=" + "9" * 500,
    ],
)
def test_malformed_or_multiple_ranges_get_the_whole_file(owner_client, video_url, header):
    response = owner_client.get(video_url, headers={"Range": header})

    assert response.status_code == 200
    assert body(response) == VIDEO


def test_range_is_ignored_on_head_and_head_sends_no_body(owner_client, video_url):
    response = owner_client.head(video_url, headers={"Range": "bytes=0-9"})

    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Length"] == str(SIZE)
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Disposition"].startswith("inline; filename=")
    assert response["ETag"] == owner_client.get(video_url)["ETag"]
    assert_media_headers(response)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, ByteRange(0, 1)),
        ("BYTES = 2 - 4", 10, ByteRange(2, 5)),
        ("bytes=-3", 10, ByteRange(7, 10)),
        ("bytes=8-", 10, ByteRange(8, 10)),
        ("", 10, None),
        ("bytes=1-2, 4-5", 10, None),
        ("bytes=0x1-2", 10, None),
        ("bytes=-1-2", 10, None),
    ],
)
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=-1", 0)])
def test_parse_range_unsatisfiable(header, size):
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


# --- Conditional requests ----------------------------------------------------------------


def test_matching_etag_answers_304_without_the_file(owner_client, video_url):
    etag = owner_client.get(video_url)["ETag"]

    response = owner_client.get(video_url, headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert_media_headers(response)
    assert owner_client.get(video_url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_not_modified_since_answers_304_and_an_older_date_the_file(owner_client, video_url):
    last_modified = owner_client.get(video_url)["Last-Modified"]

    response = owner_client.get(video_url, headers={"If-Modified-Since": last_modified})
    assert response.status_code == 304
    assert response["Last-Modified"] == last_modified

    earlier = owner_client.get(video_url, headers={"If-Modified-Since": http_date(86_400)})
    assert earlier.status_code == 200
    assert body(earlier) == VIDEO


def test_a_rewritten_file_gets_another_etag(owner_client, video_url, finished):
    etag = owner_client.get(video_url)["ETag"]
    path = finished.video.path
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # same size, a moment later

    response = owner_client.get(video_url, headers={"If-None-Match": etag})

    assert response.status_code == 200
    assert response["ETag"] != etag


def test_if_range_with_the_current_etag_or_date_honours_the_range(owner_client, video_url):
    first = owner_client.get(video_url)
    for validator in (first["ETag"], first["Last-Modified"]):
        response = owner_client.get(
            video_url, headers={"Range": "bytes=100-199", "If-Range": validator}
        )
        assert response.status_code == 206, validator
        assert body(response) == VIDEO[100:200]


@pytest.mark.parametrize(
    "stale", ['"0-0"', "W/{etag}", "Thu, 01 Jan 1970 00:00:01 GMT", "not a validator"]
)
def test_if_range_that_no_longer_matches_gets_the_whole_file(owner_client, video_url, stale):
    etag = owner_client.get(video_url)["ETag"]

    response = owner_client.get(
        video_url, headers={"Range": "bytes=100-199", "If-Range": stale.format(etag=etag)}
    )

    assert response.status_code == 200
    assert body(response) == VIDEO


def test_failed_if_match_is_412_in_our_error_shape(owner_client, video_url):
    response = owner_client.get(video_url, headers={"If-Match": '"0-0"'})

    assert response.status_code == 412
    assert response.json()["error"]["code"] == "precondition_failed"


# --- Who may fetch, and the other media views --------------------------------------------


def test_another_user_is_refused_a_range(client, other_user, video_url):
    client.force_login(other_user)

    response = client.get(video_url, headers={"Range": "bytes=0-99"})

    assert response.status_code == 404
    assert VIDEO[:100] not in response.content


def test_range_with_an_api_token(client, user, video_url):
    _, raw = tokens.create_token(user=user, name="player")

    response = client.get(
        video_url, headers={"Range": "bytes=-10", "Authorization": f"Bearer {raw}"}
    )

    assert response.status_code == 206
    assert body(response) == VIDEO[-10:]


def test_image_and_signed_image_answer_ranges(owner_client, user):
    generation = GenerationFactory(owner=user)
    generation.image.save("input.png", png())
    Generation.objects.filter(pk=generation.pk).update(image_url="")
    generation.refresh_from_db()
    data = generation.image.read()
    urls = [
        reverse("generation-image", args=[generation.pk]),
        reverse("generation-image-signed", args=[services.signed_image_token(generation)]),
    ]
    for url in urls:
        response = owner_client.get(url, headers={"Range": "bytes=8-15"})
        assert response.status_code == 206, url
        assert body(response) == data[8:16]
        assert response["Content-Type"] == "image/png"
        assert response["Content-Range"] == f"bytes 8-15/{len(data)}"
        assert_media_headers(response)


def test_a_video_whose_file_is_gone_is_404_not_500(owner_client, video_url, finished):
    os.remove(finished.video.path)

    assert owner_client.get(video_url).status_code == 404


# --- MEDIA_ACCEL=nginx -------------------------------------------------------------------


@pytest.fixture
def nginx_accel(settings):
    settings.MEDIA_ACCEL = "nginx"
    settings.MEDIA_ACCEL_PREFIX = "/protected-media/"


def test_accel_mode_hands_the_file_to_nginx_with_the_same_headers(
    nginx_accel, owner_client, video_url, finished
):
    response = owner_client.get(video_url, headers={"Range": "bytes=0-99"})

    assert response.status_code == 200  # nginx answers the range itself
    assert response["X-Accel-Redirect"] == f"/protected-media/{finished.video.name}"
    assert finished.video.name.startswith("private/videos/")
    assert response.content == b""
    assert response["Content-Type"] == "video/mp4"
    assert response["Content-Disposition"] == f'inline; filename="{finished.pk}.mp4"'
    for header, value in SAFE_HEADERS.items():
        assert response[header] == value, header


def test_accel_mode_keeps_the_access_check_in_django(nginx_accel, client, other_user, video_url):
    assert client.get(video_url).status_code == 404  # anonymous
    client.force_login(other_user)

    response = client.get(video_url)

    assert response.status_code == 404
    assert "X-Accel-Redirect" not in response


def test_accel_mode_never_points_nginx_outside_the_media(nginx_accel, owner_client, finished):
    Generation.objects.filter(pk=finished.pk).update(video="../../etc/passwd")

    response = owner_client.get(reverse("generation-video", args=[finished.pk]))

    assert response.status_code == 404
    assert "X-Accel-Redirect" not in response


def test_accel_mode_quotes_a_stored_name_with_odd_characters(nginx_accel, owner_client, user):
    generation = GenerationFactory(owner=user)
    generation.image.save("my photo?.png", png())
    Generation.objects.filter(pk=generation.pk).update(image_url="")

    response = owner_client.get(reverse("generation-image", args=[generation.pk]))

    assert response["X-Accel-Redirect"].startswith("/protected-media/private/inputs/")
    assert " " not in response["X-Accel-Redirect"] and "?" not in response["X-Accel-Redirect"]
