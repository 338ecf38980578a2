"""The studio sends a video only at the price on screen. Changing an option asks the server
for a new quote; a click on "Generate video" before it arrives used to send the earlier
options' quote with the new options, which the server refuses ("The price shown was out of
date"), so a quick user (or a slow network) saw an error for nothing. Now the button waits
for the price: it is disabled, and the price box busy, until the new quote is shown."""

from __future__ import annotations

import threading
import time

import pytest
from playwright.sync_api import Page, expect

from generations import views
from generations.models import Generation
from tests.browser.conftest import needs_chromium
from tests.browser.test_first_visit import studio_with_image
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]

SLOW_QUOTE_SECONDS = 2.0


@pytest.fixture
def slow_quotes(monkeypatch):
    """Once set, each quote the price box asks for takes SLOW_QUOTE_SECONDS (the live
    server runs in this process, in another thread)."""
    slow = threading.Event()
    binding_quote = views._binding_quote

    def slowly(**kwargs):
        if slow.is_set():
            time.sleep(SLOW_QUOTE_SECONDS)
        return binding_quote(**kwargs)

    monkeypatch.setattr(views, "_binding_quote", slowly)
    return slow


def test_a_click_while_the_price_is_loading_sends_at_the_new_price(
    page: Page, live_server, slow_quotes
):
    user = UserFactory(credits=1000)
    studio_with_image(page, live_server, user, "A kite rising over dunes")
    price = page.get_by_test_id("price-credits")
    expect(price).to_have_text("320")  # 8 s with audio at 720p

    slow_quotes.set()
    page.get_by_label("6 seconds").check()
    waiting = page.get_by_role("button", name="Updating the price…")
    expect(waiting).to_be_disabled()  # while the 6-second price is on its way
    expect(page.locator("#price-box")).to_have_attribute("aria-busy", "true")
    page.get_by_role("button", name="Generate video").click()  # waits for the new price

    page.wait_for_url(f"{live_server.url}/videos/")
    generation = Generation.objects.get(owner=user)
    assert generation.duration == "6s"
    assert generation.cost_credits == 240  # the price shown when it was sent
    assert generation.quote is not None and generation.quote.options["duration"] == "6s"


def test_enter_while_the_price_is_loading_sends_nothing(page: Page, live_server, slow_quotes):
    """The form has other ways to be sent than the button (Enter in the seed field)."""
    user = UserFactory(credits=1000)
    studio_with_image(page, live_server, user, "A kite rising over dunes")
    expect(page.get_by_test_id("price-credits")).to_have_text("320")

    posts: list[str] = []
    page.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )
    slow_quotes.set()
    page.get_by_label("6 seconds").check()
    # What Enter in a field does:
    page.evaluate("() => document.getElementById('create-form').requestSubmit()")
    expect(page.get_by_test_id("price-credits")).to_have_text("240")
    expect(page.locator("#price-box")).not_to_have_attribute("aria-busy", "true")
    assert posts == [] and page.url == f"{live_server.url}/"
    assert not Generation.objects.filter(owner=user).exists()
    # Once the price is shown, the button sends it.
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(f"{live_server.url}/videos/")
    assert Generation.objects.get(owner=user).cost_credits == 240


def test_only_a_priced_option_asks_for_a_new_quote(page: Page, live_server):
    """The prompt and the image do not change the price: the box does not ask again when
    they change (a prompt's change comes as it loses focus, often to a click on "Generate
    video", which a request then would have disabled under the click)."""
    asked: list[str] = []
    page.on(
        "request", lambda request: asked.append(request.url) if "/quote/" in request.url else None
    )
    studio_with_image(page, live_server, UserFactory(credits=1000), "A kite rising over dunes")
    page.get_by_label("Prompt").blur()
    expect(page.get_by_role("button", name="Generate video")).to_be_enabled()
    assert asked == []
    page.get_by_label("6 seconds").check()
    expect(page.get_by_test_id("price-credits")).to_have_text("240")
    assert len(asked) == 1
    page.get_by_role("button", name="Generate video").click()  # one click sends
    page.wait_for_url(f"{live_server.url}/videos/")


def test_a_price_request_that_fails_gives_the_button_back(page: Page, live_server):
    """No answer (the network dropped it): the button is usable again, with its own words;
    a send then carries the earlier quote, which the server refuses in plain words."""
    studio_with_image(page, live_server, UserFactory(credits=1000), "A kite rising over dunes")
    expect(page.get_by_test_id("price-credits")).to_have_text("320")
    page.route("**/quote/?*", lambda route: route.abort())
    page.get_by_label("6 seconds").check()
    button = page.get_by_role("button", name="Generate video")
    expect(button).to_be_enabled()
    expect(page.locator("#price-box")).not_to_have_attribute("aria-busy", "true")
    button.click()
    expect(page.get_by_text("The price shown was out of date")).to_be_visible()
    assert page.url == f"{live_server.url}/"
