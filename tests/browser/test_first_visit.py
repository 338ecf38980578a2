"""A first-time visitor in a real browser (issue 14): the landing page shows the prices
and its sample video plays; Try again opens the studio filled in with the stored image;
the studio refuses a too-small image before any upload, in the server's own words."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from playwright.sync_api import Page, expect

from generations.models import Generation
from generations.services import fail
from generations.validation import check_image_file
from tests.browser.conftest import needs_chromium
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]


def log_in(page: Page, live_server, user) -> None:
    """A session made by Django's test client, handed to the browser as its cookie."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def image_bytes(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, format=fmt)
    return buffer.getvalue()


def studio_with_image(page: Page, live_server, user, prompt: str) -> None:
    """`user` in the studio with a 1280x720 image chosen and `prompt` written."""
    log_in(page, live_server, user)
    page.goto(f"{live_server.url}/")
    page.locator("input[type=file]").set_input_files(
        files=[{"name": "dunes.png", "mimeType": "image/png", "buffer": image_bytes((1280, 720))}]
    )
    page.get_by_label("Prompt").fill(prompt)


def server_refusal(name: str, data: bytes) -> str:
    """What the server says of this upload (the same check the studio and the API run)."""
    with pytest.raises(ValidationError) as refused:
        check_image_file(SimpleUploadedFile(name, data))
    return refused.value.messages[0]


def test_landing_shows_the_prices_and_the_sample_video_plays(page: Page, live_server, screenshot):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_title("Turn a picture into a video · Veo Studio")
    expect(page.get_by_test_id("price-example")).to_have_text(
        "For example, an 8-second 720p video with audio: 320 credits."
    )
    expect(page.get_by_test_id("price-table")).to_contain_text("320 credits")
    expect(page.get_by_test_id("landing-signup")).to_be_visible()
    expect(page.get_by_test_id("landing-login")).to_be_visible()
    state = page.evaluate(
        """async () => {
            const video = document.querySelector('[data-testid=sample-video]');
            const deadline = Date.now() + 10000;
            while ((video.paused || video.currentTime < 0.3) && !video.error
                   && Date.now() < deadline) {
                await new Promise(resolve => setTimeout(resolve, 50));
            }
            return {paused: video.paused, time: video.currentTime,
                    error: video.error && video.error.code, ready: video.readyState};
        }"""
    )
    assert state["error"] is None, state
    assert not state["paused"] and state["time"] >= 0.3, state  # autoplay, muted: it plays
    screenshot("landing")


def test_try_again_opens_the_studio_filled_in_with_the_stored_image(
    page: Page, live_server, screenshot
):
    user = UserFactory(credits=1000)
    # A first video from an uploaded image, through the studio itself; it is then failed.
    studio_with_image(page, live_server, user, "A kite rising over dunes")
    page.get_by_label("6 seconds").check()
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(f"{live_server.url}/videos/")
    first = Generation.objects.get(owner=user)
    fail(generation_id=first.pk, code="timeout", message="Not ready in time.")  # released
    page.reload()
    expect(page.get_by_test_id("card-error")).to_contain_text("The video took too long to make.")
    screenshot("failed-card-try-again")

    page.get_by_test_id("try-again").click()
    page.wait_for_url(f"{live_server.url}/?from={first.pk}")
    expect(page.get_by_label("Prompt")).to_have_value("A kite rising over dunes")
    expect(page.locator("input[name=duration][value='6s']")).to_be_checked()
    expect(page.get_by_test_id("reused-image")).to_be_visible()
    reused = page.get_by_alt_text("The image of your earlier video")
    expect(reused).to_be_visible()
    assert page.evaluate("img => img.naturalWidth", reused.element_handle()) == 1280
    expect(page.get_by_test_id("price-credits")).to_have_text("240")  # 6 s x 40 credits/s
    expect(page.get_by_test_id("available-credits")).to_have_text("1,000")  # nothing charged
    screenshot("try-again-studio")

    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(f"{live_server.url}/videos/")
    again = Generation.objects.exclude(pk=first.pk).get(owner=user)
    assert again.prompt == "A kite rising over dunes" and again.duration == "6s"
    assert again.image and again.image.name != first.image.name


def test_a_too_small_image_is_refused_before_upload_in_the_servers_words(page: Page, live_server):
    user = UserFactory(credits=1000)
    log_in(page, live_server, user)
    small = image_bytes((640, 360))
    gif = image_bytes((1280, 720), "GIF")
    not_an_image = b"%PDF-1.4 " + bytes(64)

    uploads: list[str] = []
    page.on("request", lambda request: uploads.append(request.method))
    page.goto(f"{live_server.url}/")
    file_input = page.locator("input[type=file]")
    refusal = page.get_by_test_id("image-refusal")
    for name, mime, data in [
        ("small.png", "image/png", small),
        ("anim.gif", "image/gif", gif),
        ("notes.png", "image/png", not_an_image),
    ]:
        file_input.set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])
        expect(refusal).to_have_text(server_refusal(name, data))
        expect(file_input).to_have_attribute("aria-invalid", "true")
        assert file_input.evaluate("input => input.files.length") == 0  # nothing to send
    assert "POST" not in uploads

    # A good image clears the refusal, whatever its name and type say (the server goes by
    # the content too).
    file_input.set_input_files(
        files=[{"name": "ok.html", "mimeType": "text/html", "buffer": image_bytes((1280, 720))}]
    )
    expect(refusal).to_be_hidden()
    expect(page.get_by_alt_text("Preview of the chosen image")).to_be_visible()
    assert file_input.evaluate("input => input.files.length") == 1
