"""The studio's model picker in a real browser: picking a model swaps in its image slots
and options (htmx), and the price box follows the model."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import needs_chromium
from tests.browser.test_first_visit import image_bytes, log_in, server_refusal
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]


def test_picking_a_model_shows_its_fields_and_its_price(page: Page, live_server):
    log_in(page, live_server, UserFactory(credits=1000))
    page.goto(f"{live_server.url}/")
    expect(page.get_by_test_id("price-credits")).to_have_text("320")
    expect(page.locator("input[name=image]")).to_be_attached()

    page.get_by_test_id("model-picker").select_option(
        "fal-ai/veo3.1/fast/first-last-frame-to-video"
    )
    expect(page.get_by_test_id("frame-slots")).to_be_visible()
    expect(page.locator("input[name=image]")).not_to_be_attached()
    expect(page.locator("input[name=aspect_ratio][value=auto]")).to_be_checked()
    expect(page.get_by_test_id("price-credits")).to_have_text("120")  # 8 s x 15, fast tier

    page.get_by_test_id("model-picker").select_option("fal-ai/veo3.1/reference-to-video")
    expect(page.get_by_test_id("reference-slots")).to_be_visible()
    expect(page.locator("input[name=duration][value='4s']")).not_to_be_attached()
    expect(page.get_by_test_id("price-credits")).to_have_text("320")


def test_every_swapped_in_image_slot_refuses_a_too_small_image_in_the_servers_words(
    page: Page, live_server
):
    log_in(page, live_server, UserFactory(credits=1000))
    small, good = image_bytes((640, 360)), image_bytes((1280, 720))
    too_small = server_refusal("small.png", small)
    uploads: list[str] = []
    page.on("request", lambda request: uploads.append(request.method))
    page.goto(f"{live_server.url}/")
    picker = page.get_by_test_id("model-picker")

    def choose(selector: str, *files: tuple[str, bytes]) -> None:
        page.locator(selector).set_input_files(
            files=[{"name": name, "mimeType": "image/png", "buffer": data} for name, data in files]
        )

    # The first and last frame, swapped in.
    picker.select_option("fal-ai/veo3.1/first-last-frame-to-video")
    expect(page.get_by_test_id("frame-slots")).to_be_visible()
    for name in ("first_frame", "last_frame"):
        choose(f"input[name={name}]", ("small.png", small))
        expect(page.get_by_test_id(f"{name}-refusal")).to_have_text(too_small)
        slot = page.locator(f"input[name={name}]")
        expect(slot).to_have_attribute("aria-invalid", "true")
        assert slot.evaluate("input => input.files.length") == 0  # nothing to send
    choose("input[name=first_frame]", ("good.png", good))
    expect(page.get_by_test_id("first_frame-refusal")).to_be_hidden()
    # "auto" (the frames decide the shape) stays chosen.
    expect(page.locator("input[name=aspect_ratio][value=auto]")).to_be_checked()

    # References: a too-small one among good ones refuses them all.
    picker.select_option("fal-ai/veo3.1/reference-to-video")
    expect(page.get_by_test_id("reference-slots")).to_be_visible()
    choose("input[name=reference_images]", ("a.png", good), ("small.png", small))
    expect(page.get_by_test_id("reference_images-refusal")).to_have_text(too_small)
    assert page.locator("input[name=reference_images]").evaluate("i => i.files.length") == 0

    # The starting image's dropzone, swapped back in, works as on page load.
    picker.select_option("fal-ai/veo3.1/image-to-video")
    expect(page.locator("input[name=image]")).to_be_attached()
    choose("input[name=image]", ("small.png", small))
    expect(page.get_by_test_id("image-refusal")).to_have_text(too_small)
    choose("input[name=image]", ("good.png", good))
    expect(page.get_by_test_id("image-refusal")).to_be_hidden()
    expect(page.get_by_alt_text("Preview of the chosen image")).to_be_visible()
    assert "POST" not in uploads
