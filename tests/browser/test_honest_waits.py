"""Honest waits (issue 14) in a real browser: an in-flight card says when its video will be
ready; a video that finishes while the tab is hidden puts the count of ready videos in the
title (reset when the tab is seen again) and raises a notification once the user said yes
to the opt-in button, which is the only thing that asks for the permission."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from generations.models import Generation
from tests.browser.conftest import needs_chromium
from tests.factories import GenerationFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]

# window.Notification with the real permission prompt (granted by the test's context) and
# a record of what the page asked for and showed.
NOTIFICATION_SPY = """
(() => {
  const Real = window.Notification;
  if (!Real) return;
  let permission = "default";
  window.__asked = 0;
  window.__notes = [];
  class Spy {
    constructor(title, options) { window.__notes.push({ title, body: (options || {}).body }); }
    static get permission() { return permission; }
    static requestPermission(callback) {
      window.__asked += 1;
      return Real.requestPermission().then((answer) => {
        permission = answer;
        if (callback) callback(answer);
        return answer;
      });
    }
  }
  window.Notification = Spy;
})();
"""


def set_hidden(page: Page, hidden: bool) -> None:
    """The tab left (or seen again), as the page's visibility API reports it."""
    page.evaluate(
        """(hidden) => {
          Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
          Object.defineProperty(document, "visibilityState", {
            configurable: true, get: () => (hidden ? "hidden" : "visible"),
          });
          document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def finish(generation: Generation) -> None:
    """What the worker does when the video is stored: the card's next poll shows it."""
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.SUCCEEDED, completed_at=timezone.now()
    )


@pytest.fixture
def rendering(settings):
    settings.GENERATION_TYPICAL_SECONDS = 120
    user = UserFactory()
    now = timezone.now()
    generation = GenerationFactory(
        owner=user,
        status=Generation.Status.RUNNING,
        submitted_at=now,
        started_at=now,
        prompt="A lighthouse in a storm, waves breaking",
    )
    return user, generation


def test_a_video_finished_while_away_counts_in_the_title_and_notifies(
    page: Page, context, live_server, login, rendering, screenshot
):
    user, generation = rendering
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(NOTIFICATION_SPY)
    login(user)
    page.goto(f"{live_server.url}/videos/")

    card = page.locator(f"#card-{generation.pk}")
    expect(card.get_by_test_id("estimate")).to_have_text(re.compile(r"ready in about 2 minutes"))
    screenshot("honest-waits-running-card")
    assert page.evaluate("window.__asked") == 0  # never asked without a click

    page.get_by_role("button", name="Notify me when videos are ready").click()
    expect(page.get_by_text("You will be notified when a video is ready.")).to_be_visible()
    assert page.evaluate("window.__asked") == 1

    set_hidden(page, True)
    finish(generation)
    expect(card).to_have_attribute("data-status", "succeeded", timeout=10_000)
    expect(page).to_have_title("(1) My videos · Veo Studio")
    assert page.evaluate("window.__notes") == [
        {"title": "Your video is ready", "body": "A lighthouse in a storm, waves breaking"}
    ]

    set_hidden(page, False)
    expect(page).to_have_title("My videos · Veo Studio")


def test_a_video_finished_while_looking_changes_nothing(
    page: Page, context, live_server, login, rendering
):
    user, generation = rendering
    context.grant_permissions(["notifications"], origin=live_server.url)
    context.add_init_script(NOTIFICATION_SPY)
    login(user)
    page.goto(f"{live_server.url}/videos/")
    page.get_by_role("button", name="Notify me when videos are ready").click()
    expect(page.get_by_text("You will be notified when a video is ready.")).to_be_visible()

    finish(generation)
    expect(page.locator(f"#card-{generation.pk}")).to_have_attribute(
        "data-status", "succeeded", timeout=10_000
    )
    assert page.title() == "My videos · Veo Studio"
    assert page.evaluate("window.__notes") == []


def test_the_generation_page_waits_to_be_seen_before_it_reloads(
    page: Page, live_server, login, rendering
):
    user, generation = rendering
    login(user)
    page.goto(f"{live_server.url}/videos/{generation.pk}/")
    expect(page.locator("#status-panel")).to_contain_text("ready in about 2 minutes")

    set_hidden(page, True)
    finish(generation)
    expect(page).to_have_title(re.compile(r"^\(1\) Video: "), timeout=10_000)

    with page.expect_navigation():
        set_hidden(page, False)
    expect(page.locator("#status-panel")).to_have_attribute("data-status", "succeeded")
    expect(page).to_have_title(re.compile(r"^Video: "))
