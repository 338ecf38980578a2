"""The browser's time zone in a real Chromium (issue 14): signing up from Tokyo stores
Asia/Tokyo, found by static/js/timezone.js, and the portal then shows times in JST; a
user without a zone gets the browser's at login."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from playwright.sync_api import Browser, expect

from accounts import ledger
from accounts.models import User
from tests.browser.conftest import DESKTOP, needs_chromium
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]

PASSWORD = "a quiet lighthouse 42"


def test_signing_up_from_tokyo_stores_the_zone_and_times_show_in_jst(
    browser: Browser, live_server, screenshot
):
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/signup/")
    expect(page.locator("input[name=time_zone]")).to_have_value("Asia/Tokyo")
    page.get_by_label("Username").fill("kenji")
    page.get_by_label("Email").fill("kenji@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    if page.get_by_label("Password again").count():
        page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_load_state()

    user = User.objects.get(username="kenji")
    assert user.time_zone == "Asia/Tokyo"

    # Confirmed and given credits, the user logs in: the ledger's times are in JST.
    EmailAddress.objects.filter(user=user).update(verified=True)
    ledger.grant(user=user, amount=500, reason="test credits", idempotency_key="tz-browser")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username or email").fill("kenji")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/credits/")
    entry_time = page.locator("time[datetime*='T']").first  # the chart's days have no time
    expect(entry_time).to_contain_text("JST")
    assert (entry_time.get_attribute("datetime") or "").endswith("+09:00")

    page.goto(f"{live_server.url}/account/")
    expect(page.get_by_label("Time zone", exact=True)).to_have_value("Asia/Tokyo")
    expect(page.locator("main")).to_contain_text("JST")
    screenshot("account-settings", page)
    context.close()


def test_logging_in_from_berlin_gives_a_user_without_a_zone_the_browsers(
    browser: Browser, live_server
):
    user = UserFactory(username="greta")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    context = browser.new_context(timezone_id="Europe/Berlin", viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username or email").fill("greta")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/")
    user.refresh_from_db()
    assert user.time_zone == "Europe/Berlin"
    context.close()
