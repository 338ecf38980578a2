"""Browser tests: pytest-playwright driving Debian's Chromium against Django's live server,
with a real qcluster worker (the `start_worker` fixture) on the simulated fal backend."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from playwright.sync_api import Page

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


# Every browser test module sets: pytestmark = [pytest.mark.browser, needs_chromium]
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not found")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium, never a downloaded one (`playwright install` is not used)."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": DESKTOP}


@contextmanager
def _orm_beside_playwright():
    """Playwright's sync API keeps an event loop running in this thread, and Django refuses
    ORM calls from a thread with a running loop. The tests' own ORM calls (arranging data,
    checking the ledger, pytest-django's setup and flush) are plain synchronous code, so
    the guard is lifted around each phase of the browser tests, and only of them."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


# Hooks in this conftest apply only to the tests in this folder.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _orm_beside_playwright():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _orm_beside_playwright():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    with _orm_beside_playwright():
        return (yield)


@pytest.fixture
def screenshot(request):
    """`screenshot("name")` saves a full-page PNG of the test's `page` under
    test-artifacts/screenshots/; `screenshot("name", target, lang="de")` saves a page or an
    element of the test's choosing under test-artifacts/screenshots/de/."""

    def take(name: str, target=None, *, lang: str | None = None) -> Path:
        folder = SCREENSHOTS / lang if lang else SCREENSHOTS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        target = target or request.getfixturevalue("page")
        if isinstance(target, Page):
            target.screenshot(path=str(path), full_page=True)
        else:  # an element (a Locator): only its box
            target.screenshot(path=str(path))
        return path

    return take


@pytest.fixture
def simulated_worker(start_worker, settings):
    """A qcluster on the simulated fal backend: 2 s in fal's queue, 3 s rendering."""
    settings.FAL_KEY = ""
    settings.FAL_SIMULATED = True
    return start_worker(FAL_SIMULATED_QUEUE_SECONDS="2", FAL_SIMULATED_RUN_SECONDS="3")


@pytest.fixture
def login(page, live_server):
    """`login(user)` logs in through the login form (allauth's), the user's address
    confirmed first as it would be after signup."""

    def do(user, password: str = "correct horse battery") -> None:
        EmailAddress.objects.get_or_create(
            user=user, email=user.email, defaults={"verified": True, "primary": True}
        )
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username or email").fill(user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")

    return do
