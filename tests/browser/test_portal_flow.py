"""The portal in a real browser: sign up, create with a live price, watch the card finish
by itself, play the video, pay exactly the quote; API tokens; a failure that returns the
credits. A real qcluster worker runs the tasks on the simulated fal backend."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from accounts.models import CreditAccount, LedgerEntry, User
from generations.models import Generation
from tests.browser.conftest import PHONE, needs_chromium
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]

SAMPLE_IMAGE = Path(__file__).resolve().parents[2] / "generations" / "assets" / "sample-input.jpg"
FINISH_TIMEOUT = 45  # simulated: 2 s queued + 3 s rendering, plus the sweep's lag


@pytest.fixture
def sample_image(tmp_path) -> Path:
    if SAMPLE_IMAGE.exists():
        return SAMPLE_IMAGE
    from PIL import Image

    path = tmp_path / "still.jpg"
    Image.new("RGB", (1280, 720), (40, 90, 160)).save(path, format="JPEG")
    return path


def header_credits(page: Page) -> tuple[int, int, int]:
    def number(testid: str) -> int:
        return int(page.get_by_test_id(testid).inner_text().replace(",", ""))

    return number("available-credits"), number("reserved-credits"), number("balance-credits")


def watch_card_until_final(page: Page, *, timeout: float = FINISH_TIMEOUT) -> list[str]:
    """The statuses the (only) card shows, in order, until it is final. The page must not
    reload meanwhile: a marker set on `window` has to survive."""
    page.evaluate("window.__sameDocument = true")
    card = page.get_by_test_id("card").first
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = card.get_attribute("data-status")
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in ("succeeded", "failed", "canceled"):
            break
        page.wait_for_timeout(150)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"
    return seen


def test_signup_create_watch_play_and_pay_exactly_the_quote(
    page: Page, live_server, simulated_worker, settings, screenshot, sample_image
):
    settings.SIGNUP_CREDITS = 1000
    base = live_server.url

    # Sign up, confirm the address from the email, and the signup credits show.
    page.goto(f"{base}/signup/")
    expect(page).to_have_title("Sign up · Veo Studio")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password", exact=True).fill("a quiet lighthouse 42")
    page.get_by_label("Password again").fill("a quiet lighthouse 42")
    screenshot("01-signup")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("ada@example.com")).to_be_visible()  # "we sent a link to ..."
    assert not LedgerEntry.objects.filter(account__user__username="ada").exists()
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body)
    assert link, mail.outbox[-1].body
    page.goto(link.group(0))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{base}/")
    expect(page.get_by_text("1,000 credits to start with")).to_be_visible()
    assert header_credits(page) == (1000, 0, 1000)
    expect(page.get_by_text("Simulated backend.")).to_be_visible()

    # The image, a prompt, and the live price as the options change.
    page.locator("#id_image").set_input_files(str(sample_image))
    expect(page.locator("[data-meta]")).to_contain_text("1280\u00d7720")
    page.get_by_label("Prompt").fill(
        "Slow dolly-in on the lighthouse as waves crash below, golden hour"
    )
    price = page.get_by_test_id("price-credits")
    expect(price).to_have_text("320")  # 8 s with audio at 720p
    page.locator("label", has_text="4 seconds").click()
    expect(price).to_have_text("160")
    page.locator("label.switch").click()  # audio off
    expect(price).to_have_text("80")
    expect(page.get_by_test_id("price-after")).to_contain_text("920 will be left")
    screenshot("02-studio-filled")
    quoted = int(price.inner_text())

    # Submit: the gallery shows the new card, which finishes by itself.
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(f"{base}/videos/")
    expect(page.get_by_text("80 credits are held for it")).to_be_visible()
    assert header_credits(page) == (920, 80, 1000)
    screenshot("03-gallery-in-progress")
    seen = watch_card_until_final(page)
    assert seen[-1] == "succeeded", seen
    assert set(seen[:-1]) & {"pending", "queued", "running"}, seen
    # The header followed without a reload: exactly the quote was spent.
    expect(page.get_by_test_id("balance-credits")).to_have_text("920")
    assert header_credits(page) == (1000 - quoted, 0, 1000 - quoted)
    page.wait_for_timeout(300)  # the card's first frame
    screenshot("04-gallery-done")

    # The generation page: the video plays.
    page.get_by_test_id("card").first.locator(".card__prompt a").click()
    player = page.get_by_test_id("player")
    expect(player).to_be_visible()
    state = page.evaluate(
        """async () => {
            const video = document.querySelector('[data-testid=player]');
            video.muted = true;
            await video.play();
            await new Promise(resolve => setTimeout(resolve, 300));
            return {ready: video.readyState, duration: video.duration, time: video.currentTime};
        }"""
    )
    assert state["ready"] >= 2 and state["duration"] > 0 and state["time"] > 0, state
    expect(page.get_by_test_id("download")).to_have_attribute("download", re.compile(r"\.mp4$"))
    expect(page.get_by_text(f"{quoted} credits (spent)")).to_be_visible()
    screenshot("05-generation-page")

    user = User.objects.get(username="ada")
    generation = Generation.objects.get(owner=user)
    assert (generation.cost_credits, generation.duration, generation.generate_audio) == (
        quoted,
        "4s",
        False,
    )
    assert CreditAccount.objects.get(user=user).balance == 1000 - quoted
    assert list(
        LedgerEntry.objects.filter(generation=generation)
        .order_by("id")
        .values_list("kind", "amount")
    ) == [("hold", 0), ("capture", -quoted)]

    page.goto(f"{base}/credits/")
    expect(page.get_by_test_id("ledger")).to_contain_text("Capture")
    screenshot("06-credits")

    # The same pages on a phone.
    page.set_viewport_size(PHONE)
    for name, path in [("studio", "/"), ("gallery", "/videos/"), ("credits", "/credits/")]:
        page.goto(f"{base}{path}")
        screenshot(f"phone-{name}")
    page.goto(f"{base}/videos/{generation.pk}/")
    screenshot("phone-generation-page")


def test_failed_generation_shows_its_error_and_the_credits_come_back(
    page: Page, live_server, simulated_worker, login, screenshot, sample_image
):
    user = UserFactory(username="grace", credits=1000)
    login(user)
    page.locator("#id_image").set_input_files(str(sample_image))
    page.get_by_label("Prompt").fill("A duel at noon [fal:content_policy]")
    expect(page.get_by_test_id("price-credits")).to_have_text("320")
    page.get_by_role("button", name="Generate video").click()
    page.wait_for_url(f"{live_server.url}/videos/")
    assert header_credits(page) == (680, 320, 1000)

    seen = watch_card_until_final(page)
    assert seen[-1] == "failed", seen
    expect(page.get_by_test_id("card-error")).to_contain_text("refused by the content rules")
    expect(page.get_by_text("320 credits returned")).to_be_visible()
    expect(page.get_by_test_id("available-credits")).to_have_text("1,000")
    assert header_credits(page) == (1000, 0, 1000)
    screenshot("07-gallery-failed")
    assert CreditAccount.objects.get(user=user).available == 1000


def test_create_use_and_revoke_an_api_token(page: Page, live_server, login, screenshot):
    user = UserFactory(username="lin", credits=10)
    login(user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API").click()
    expect(page).to_have_title("API tokens · Veo Studio")
    page.get_by_label("Name").fill("render farm")
    page.get_by_role("button", name="Create token").click()

    secret = page.locator("#new-token-value").input_value()
    assert secret.startswith("veo_")
    expect(page.get_by_text("It is shown only this once")).to_be_visible()
    page.get_by_role("button", name="Copy", exact=True).first.click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    screenshot("08-token-created")
    api = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"})
    assert api.get("/api/v1/me/").status_code == 200

    # Shown once: a reload lists the token by its prefix only.
    page.reload()
    expect(page.locator("#new-token-value")).to_have_count(0)
    expect(page.get_by_test_id("tokens")).to_contain_text("render farm")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke render farm").click()
    expect(page.get_by_text("revoked. It stopped working at once.")).to_be_visible()
    expect(page.get_by_test_id("tokens")).to_contain_text("Revoked")
    screenshot("09-token-revoked")
    assert api.get("/api/v1/me/").status_code == 401
