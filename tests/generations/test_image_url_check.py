"""A request's `image_url` is fetched and checked by the worker before the submit: a link
that gives no usable image fails the generation at once (or after a few tries when the
problem may pass), with plain words and nothing charged, and nothing reaches fal.

Real parts: the submit service, the real gateway (fal-client) against the fake fal, and
an HTTPS image server on 127.0.0.1. DNS and routing are replaced at the machine's edge
(tests/security/internet.py), so `images.test` can answer a public address and still be
served locally, with private addresses refused as in production.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from PIL import Image

from accounts.models import CreditAccount, LedgerEntry
from generations import services, wording
from generations.models import Generation
from generations.services.submission import IMAGE_URL_ATTEMPTS
from tests.factories import REQUEST_BODY
from tests.fakefal import FakeFal
from tests.security.internet import (  # noqa: F401
    Server,
    answer,
    certificates,
    internet,
    redirect,
    servers,
)

pytestmark = pytest.mark.django_db

PUBLIC_IP = "93.184.216.34"  # what the fake DNS answers for the image host
IMAGE_HOST = "images.test"


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_PNG = png((1280, 720))


@pytest.fixture
def fal(real_fal, settings) -> FakeFal:
    """The real gateway against the fake fal (jobs stay queued); the worker checks image
    URLs, with a short deadline, and refuses private addresses as in production."""
    fake = real_fal(queue_seconds=60)
    settings.IMAGE_URL_CHECK = True
    settings.IMAGE_URL_TIMEOUT_SECONDS = 1.0
    settings.PRIVATE_URLS_ALLOWED = False
    return fake


@pytest.fixture
def image_host(fal, servers, internet, monkeypatch, tmp_path):  # noqa: F811
    """`image_host(respond)`: an HTTPS server for `images.test` (a public address to our
    fetch, 127.0.0.1 in fact). Its CA and the fake fal's are both trusted."""

    def start(respond) -> Server:
        certs = certificates(IMAGE_HOST, "internal.test", directory=Path(tempfile.mkdtemp()))
        bundle = tmp_path / "bundle.pem"
        bundle.write_text(Path(fal.ca_pem_path).read_text() + Path(certs.ca_path).read_text())
        monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
        server = servers(respond, tls=certs.server_context)
        internet.answer(IMAGE_HOST, [PUBLIC_IP])
        internet.route(PUBLIC_IP, server)
        return server

    return start


def url_on(server: Server, path: str = "/photo.png") -> str:
    return f"https://{IMAGE_HOST}:{server.port}{path}"


def accept(user, image_url: str) -> Generation:
    return services.accept(user=user, params={**REQUEST_BODY, "image_url": image_url}).generation


def submit(generation: Generation) -> Generation:
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    return generation


def assert_failed_without_charge(generation: Generation, user, fal: FakeFal) -> None:
    assert (generation.status, generation.error_code) == ("failed", "invalid_image_url")
    assert fal.requests("submit") == []  # nothing reached fal
    account = CreditAccount.objects.get(user=user)
    assert (account.balance, account.reserved) == (1000, 0)
    entries = LedgerEntry.objects.filter(generation=generation).order_by("id")
    assert list(entries.values_list("kind", flat=True)) == ["hold", "release"]
    call_command("check_ledger")  # raises CommandError on any disagreement
    reason = wording.failure_reason(generation)
    assert reason is not None and "Use another image" in reason.advice
    assert "fal" not in str(reason).lower()


# --- A good link ---------------------------------------------------------------------------


def test_good_image_url_is_checked_and_fal_gets_the_same_bytes(user, fal, image_host):
    server = image_host(lambda request: [answer(200, GOOD_PNG, {"Content-Type": "image/png"})])
    generation = submit(accept(user, url_on(server)))

    assert generation.status == "queued"
    assert [r.path for r in server.requests] == ["/photo.png"]
    # fal renders the image we checked, from its own storage, not from the user's link.
    [upload] = fal.uploads()
    assert (upload.data, upload.content_type, upload.file_name) == (
        GOOD_PNG,
        "image/png",
        "input.png",
    )
    assert [r.body["image_url"] for r in fal.requests("submit")] == [upload.url]


def test_resubmit_does_not_fetch_the_link_again(user, fal, image_host):
    server = image_host(lambda request: [answer(200, GOOD_PNG)])
    generation = accept(user, url_on(server))
    fal.fail_next("submit", 500)

    assert submit(generation).status == "pending"  # fal's 500: retried with backoff
    assert submit(generation).status == "queued"

    assert len(server.requests) == 1
    [upload] = fal.uploads()
    assert [r.body["image_url"] for r in fal.requests("submit")] == [upload.url, upload.url]


def test_fal_storage_down_sends_the_checked_link_itself(user, fal, image_host):
    server = image_host(lambda request: [answer(200, GOOD_PNG)])
    fal.configure(faults={"upload": {"500": 1.0}})
    generation = submit(accept(user, url_on(server)))

    assert generation.status == "queued"
    assert [r.body["image_url"] for r in fal.requests("submit")] == [url_on(server)]


# --- Broken links: failed at once, nothing charged, nothing sent to fal --------------------


def test_missing_image_fails_in_one_run_with_the_hold_released(user, fal, image_host):
    server = image_host(lambda request: [answer(404, b"Not Found")])
    generation = submit(accept(user, url_on(server)))

    assert_failed_without_charge(generation, user, fal)
    assert generation.error_message == "The image URL answered HTTP 404."
    assert len(server.requests) == 1


def test_html_page_is_not_an_image(user, fal, image_host):
    page = b"<!doctype html><title>Photo</title><img src=photo.png>"
    server = image_host(lambda request: [answer(200, page, {"Content-Type": "image/png"})])
    generation = submit(accept(user, url_on(server)))

    assert_failed_without_charge(generation, user, fal)
    assert "not a readable JPEG, PNG or WebP image" in generation.error_message


def test_image_below_the_minimum_size_is_refused_like_an_upload(user, fal, image_host):
    server = image_host(lambda request: [answer(200, png((100, 100)))])
    generation = submit(accept(user, url_on(server)))

    assert_failed_without_charge(generation, user, fal)
    assert "100x100" in generation.error_message and "720p" in generation.error_message


def test_redirect_to_a_private_address_is_not_followed(
    user,
    fal,
    image_host,
    servers,  # noqa: F811
    internet,  # noqa: F811
):
    inside = servers(lambda request: [answer(200, GOOD_PNG)])
    internet.answer("internal.test", ["127.0.0.1"])
    server = image_host(
        lambda request: redirect(f"https://internal.test:{inside.port}/latest/meta-data/")
    )
    generation = submit(accept(user, url_on(server)))

    assert_failed_without_charge(generation, user, fal)
    assert generation.error_message == "The URL must point to a public internet address."
    assert len(server.requests) == 1
    assert inside.requests == [] and inside.connections == 0


@pytest.mark.parametrize("private_urls_allowed", [False, True])
def test_a_name_that_resolves_inside_our_network_is_never_fetched(
    private_urls_allowed,
    user,
    fal,
    servers,  # noqa: F811
    internet,  # noqa: F811
    settings,
):
    # PRIVATE_URLS_ALLOWED opens callbacks to a closed network; a user's image URL is
    # fetched by our worker, so it never reaches inside, whatever that setting says.
    inside = servers(lambda request: [answer(200, GOOD_PNG)])
    internet.answer("metadata.test", ["127.0.0.1"])
    settings.PRIVATE_URLS_ALLOWED = private_urls_allowed
    generation = submit(accept(user, f"https://metadata.test:{inside.port}/photo.png"))

    assert_failed_without_charge(generation, user, fal)
    assert inside.requests == [] and inside.connections == 0


def endless_body(request) -> Iterator[bytes]:
    yield b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n"
    yield GOOD_PNG[:64]
    while True:
        yield b"\0" * 65536


def test_endless_body_is_cut_at_the_size_cap(user, fal, image_host, settings):
    settings.IMAGE_MAX_BYTES = 1024 * 1024
    server = image_host(endless_body)
    generation = submit(accept(user, url_on(server)))

    assert_failed_without_charge(generation, user, fal)
    assert generation.error_message == "The image is too large (at most 1 MB)."


def test_declared_size_over_the_cap_is_refused_before_reading(user, fal, image_host, settings):
    settings.IMAGE_MAX_BYTES = 1024 * 1024
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 50000000\r\nConnection: close\r\n\r\n"
    server = image_host(lambda request: [head, GOOD_PNG])
    generation = submit(accept(user, url_on(server)))

    assert_failed_without_charge(generation, user, fal)
    assert generation.error_message == "The image is too large (at most 1 MB)."


# --- Problems that may pass: tried again, then failed --------------------------------------


def test_timeout_is_retried_then_failed_without_charge(user, fal, image_host):
    # Answers nothing for longer than the deadline (1 s).
    server = image_host(lambda request: [3.0, answer(200, GOOD_PNG)])
    generation = accept(user, url_on(server))

    for attempt in range(1, IMAGE_URL_ATTEMPTS):
        generation = submit(generation)
        assert (generation.status, generation.attempts) == ("pending", attempt)
        assert generation.next_poll_at is not None  # the sweep tries again after the backoff
    generation = submit(generation)

    assert_failed_without_charge(generation, user, fal)
    assert generation.error_message == "The image URL did not answer in time (1 s)."
    assert len(server.requests) == IMAGE_URL_ATTEMPTS


def test_server_error_that_passes_submits_on_the_next_try(user, fal, image_host):
    answers = iter([[answer(503, b"busy")], [answer(200, GOOD_PNG)]])
    server = image_host(lambda request: next(answers))
    generation = accept(user, url_on(server))

    assert submit(generation).status == "pending"
    assert fal.requests("submit") == []
    assert submit(generation).status == "queued"
    assert len(server.requests) == 2
    assert len(fal.requests("submit")) == 1


def test_refused_connection_is_retried_then_failed(user, fal, image_host, internet):  # noqa: F811
    server = image_host(lambda request: [answer(200, GOOD_PNG)])
    server.close()  # the host answers DNS but nothing listens
    generation = accept(user, url_on(server))

    for _ in range(IMAGE_URL_ATTEMPTS):
        generation = submit(generation)

    assert_failed_without_charge(generation, user, fal)
    assert "could not be reached" in generation.error_message


# --- Where the check does not apply ---------------------------------------------------------


def test_accept_never_fetches_the_link(user, fal, image_host):
    server = image_host(lambda request: [answer(200, GOOD_PNG)])
    accept(user, url_on(server))
    assert server.requests == [] and server.connections == 0


def test_with_the_check_off_the_link_goes_to_fal_as_given(user, fal, settings):
    settings.IMAGE_URL_CHECK = False
    url = "https://images.example.com/lake.jpg"  # not fetched: it does not exist
    generation = submit(accept(user, url))

    assert generation.status == "queued"
    assert [r.body["image_url"] for r in fal.requests("submit")] == [url]
    assert fal.uploads() == []
