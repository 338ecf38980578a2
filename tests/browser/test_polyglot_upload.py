"""The review's attack in a real browser (issue 10, critical).

A user uploads a real PNG that carries a script, named `poc.html`, through the studio. A
staff member then opens that image's URL: before the fix Chromium rendered it as a page
of our origin and ran the script (in the review it granted the uploader credits through
the admin). Now it is an image in a sandbox: the script neither sets the title nor calls
home. Along the way, the studio, the gallery, the video page, the admin and the API docs
work under the Content-Security-Policy with no violation reported by the browser.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from generations.models import Generation
from tests.browser.conftest import needs_chromium
from tests.factories import UserFactory
from tests.security.polyglot import BEACON_PATH, polyglot_png

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]

FINISH_TIMEOUT = 45
# Every CSP violation in any document of the page is reported on the console.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI);
});
"""


@pytest.fixture
def watched(page: Page):
    """The page, with what it says on the console and every URL it requests."""
    page.add_init_script(REPORT_VIOLATIONS)
    seen = {"console": [], "requests": []}
    page.on("console", lambda message: seen["console"].append(message.text))
    page.on("request", lambda request: seen["requests"].append(request.url))
    return seen


def csp_complaints(messages: list[str]) -> list[str]:
    return [m for m in messages if "Content Security Policy" in m or "CSP violation" in m]


def wait_until_final(page: Page) -> str:
    card = page.get_by_test_id("card").first
    deadline = time.monotonic() + FINISH_TIMEOUT
    while time.monotonic() < deadline:
        status = card.get_attribute("data-status")
        if status in ("succeeded", "failed", "canceled"):
            return status
        page.wait_for_timeout(200)
    raise AssertionError("the card did not finish")


def test_staff_opening_an_uploaded_polyglot_runs_no_script_and_no_page_breaks_the_csp(
    page: Page, live_server, simulated_worker, login, watched, screenshot
):
    base = live_server.url
    attacker = UserFactory(username="mallory", credits=1000)
    staff = UserFactory(username="boss", is_staff=True, is_superuser=True)

    # The attacker's upload, through the studio, as the review sent it.
    login(attacker)
    page.locator("#id_image").set_input_files(
        {"name": "poc.html", "mimeType": "text/html", "buffer": polyglot_png()}
    )
    page.get_by_label("Prompt").fill("A lighthouse at dusk, waves below")
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(f"{base}/videos/")
    assert wait_until_final(page) == "succeeded"
    generation = Generation.objects.get(owner=attacker)
    assert generation.image.name.endswith("/input.png")

    # The video page: the player loads our media under the policy.
    page.goto(f"{base}/videos/{generation.pk}/")
    expect(page.get_by_test_id("player")).to_be_visible()
    page.wait_for_function("document.querySelector('[data-testid=player]').readyState >= 1")
    page.goto(f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .title").first).to_contain_text("Veo portal API")

    # The staff member: the admin, then one click on the uploaded image.
    page.context.clear_cookies()
    login(staff)
    page.goto(f"{base}/admin/")
    expect(page.locator("#site-name")).to_be_visible()
    page.goto(f"{base}/admin/generations/generation/")
    page.goto(f"{base}/admin/generations/generation/{generation.pk}/change/")
    expect(page.locator("#content")).to_be_visible()
    page.goto(f"{base}/admin/generations/generation/overview/")
    assert csp_complaints(watched["console"]) == [], watched["console"]

    image_url = f"{base}/media/generations/{generation.pk}/image"
    response = page.goto(image_url)
    assert response is not None and response.status == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
    page.wait_for_timeout(1000)  # time for a script to run, had it been allowed to
    screenshot("polyglot-opened-by-staff")

    assert not [url for url in watched["requests"] if BEACON_PATH in url]
    assert "pwned" not in page.title()
