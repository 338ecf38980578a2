"""Accessibility (issue 14): axe-core (the `axe-playwright-python` package, which bundles
it) runs on every portal page, logged out and logged in, in English and in German, and
finds no violation of impact serious or critical. Each page and language is its own test,
so a failure names both; its message lists each violation's id, help and targets.

The pages come from the URL confs: the landing page, allauth's entrance pages (login,
signup, password reset and its done and key pages, email verification, inactive, MFA
authenticate, third-party login errors), the studio, the video list, a video in each
status, the credits page with its chart and packs, purchase thanks and canceled, voucher
redeem, tokens, notification settings, the account settings page, allauth's manage
pages (password, email, two-factor and its codes, connections, reauthenticate), the
unsubscribe pages, and our 403/404/429/500 pages. One browser context per language and
login state; each test clears its cookies and sets the language and the session anew
(the database is flushed between tests, so a session cannot outlive one).

The screenshot set (issue 14: landing, studio, a running card with its estimate, a failed
card with Try again, the credits chart) is written to test-artifacts/screenshots/<lang>/.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.core.files.base import ContentFile
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone, translation
from django.views import defaults
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from accounts import ledger, tokens
from accounts.models import CreditPack, LedgerEntry, Purchase, User
from accounts.payments import fulfilment
from accounts.payments.stripe_gateway import CheckoutSession
from generations.models import FalAccount, Generation
from notifications.unsubscribe import make_token
from tests.browser.conftest import DESKTOP, needs_chromium
from tests.factories import GenerationFactory, UserFactory
from veoproject import errors

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]

LANGUAGES = ["en", "de"]
PASSWORD = "correct horse battery"
SAMPLE_VIDEO = settings.BASE_DIR / "generations" / "assets" / "sample.mp4"
# What this suite holds a page to: no violation of these impacts (moderate and minor ones
# are reported by axe too, and left to review).
BLOCKING = {"serious", "critical"}
Status = Generation.Status

AXE = Axe()


# --- The world a page is shown in ----------------------------------------------------------


def person(**kwargs) -> User:
    """A user with a confirmed address and a password, as after signup."""
    user = UserFactory(**kwargs)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    EmailAddress.objects.update_or_create(
        user=user, email=user.email, defaults={"verified": True, "primary": True}
    )
    return user


def spend(user: User, credits: int, days_ago: int) -> None:
    """A video made `days_ago` days ago: its capture is what the credits chart counts."""
    generation = video(user, Status.SUCCEEDED, cost_credits=credits)
    ledger.hold(generation=generation)
    capture = ledger.capture(generation=generation)
    when = datetime.now(UTC) - timedelta(days=days_ago)
    LedgerEntry.objects.filter(pk=capture.pk).update(created_at=when)


def video(user: User, status: str, **fields) -> Generation:
    """A generation of `user` in `status`, with what that status carries."""
    now = timezone.now()
    if status in (Status.QUEUED, Status.RUNNING):
        fields.setdefault("submitted_at", now - timedelta(seconds=20))
        fields.setdefault("fal_request_id", "req-axe")
    if status == Status.QUEUED:
        fields.setdefault("fal_queue_position", 2)
    if status == Status.RUNNING:
        fields.setdefault("started_at", now - timedelta(seconds=15))
    if status == Status.FAILED:
        fields.setdefault("error_code", "content_policy")
        fields.setdefault("error_message", "upstream said no")
    generation = GenerationFactory(owner=user, status=status, **fields)
    if status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED):
        generation.completed_at = timezone.now()  # after created_at (a constraint)
        generation.save(update_fields=["completed_at"])
    if status == Status.SUCCEEDED and not generation.is_hidden:
        generation.video.save("v.mp4", ContentFile(SAMPLE_VIDEO.read_bytes()))
    return generation


def still(generation: Generation) -> Generation:
    """An uploaded input image (a sky over a sea), so the card shows a picture."""
    picture = Image.new("RGB", (1280, 720))
    for y in range(720):
        shade = (40 + y // 6, 90 + y // 8, 160 + y // 12) if y < 430 else (20, 60 + y // 12, 110)
        picture.paste(shade, (0, y, 1280, y + 1))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    generation.image.save("still.png", ContentFile(buffer.getvalue()))
    return generation


def one_of_each(user: User) -> dict[str, Generation]:
    return {status: video(user, status) for status in Status.values}


def with_spending_and_packs(user: User) -> None:
    """Two packs on sale, two days with spending for the chart, one receipt."""
    CreditPack.objects.create(name="Starter", credits=1000, price_cents=1000, currency="usd")
    CreditPack.objects.create(name="Studio", credits=5000, price_cents=4500, currency="usd")
    spend(user, 320, days_ago=0)
    spend(user, 160, days_ago=4)
    purchase(user, paid=True)


def purchase(user: User, *, paid: bool) -> Purchase:
    """A purchase left at Stripe's checkout, or paid (granted through the same service
    Stripe's webhook calls)."""
    pack = CreditPack.objects.first() or CreditPack.objects.create(
        name="Starter", credits=1000, price_cents=1000, currency="usd"
    )
    bought = Purchase.objects.create(
        user=user,
        pack=pack,
        credits=pack.credits,
        amount_cents=pack.price_cents,
        currency=pack.currency,
        stripe_session_id=f"cs_axe_{user.pk}_{Purchase.objects.count()}",
    )
    if paid:
        session = CheckoutSession(
            id=bought.stripe_session_id or "",
            url=None,
            status="complete",
            payment_status="paid",
            payment_intent=None,
            amount_total=bought.amount_cents,
            currency=bought.currency,
        )
        assert fulfilment.mark_paid(session) == "paid"
        bought.refresh_from_db()
    return bought


def with_totp(user: User) -> User:
    TOTP.activate(user, generate_totp_secret())
    RecoveryCodes.activate(user)
    return user


def reset_key_path(user: User) -> str:
    key = default_token_generator.make_token(user)
    return reverse(
        "account_reset_password_from_key", kwargs={"uidb36": user_pk_to_url_str(user), "key": key}
    )


def confirm_email_path(user: User) -> str:
    address = EmailAddress.objects.get(user=user)
    address.verified = False
    address.save(update_fields=["verified"])
    return reverse("account_confirm_email", args=[EmailConfirmationHMAC(address).key])


def account_settings_path(user: User) -> str:
    return reverse("account-settings")


# --- Pages that need more than an address --------------------------------------------------


def post_unsubscribe(page: Page) -> None:
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()


def post_without_csrf(page: Page) -> None:
    """A form sent without its CSRF token: our 403 page for it."""
    page.locator("input[name=csrfmiddlewaretoken]").first.evaluate("input => input.remove()")
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state()


def log_in_with_totp_user(page: Page) -> None:
    """The login form of a user with two-factor: the MFA authenticate step follows."""
    page.locator("input[name=login]").fill("axe-totp")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_url("**/2fa/authenticate/")


def totp_user(user: User) -> str:
    user.username = "axe-totp"
    user.save(update_fields=["username"])
    with_totp(user)
    return reverse("account_login")


def _rendered(handler: Callable[..., HttpResponse]) -> Callable[[str], HttpResponse]:
    """An error page as our handler renders it, for the pages no click can reach (a
    permission error, a rate limit, an exception in a view); served at the live server's
    address so its styles load as on any page."""

    def render(lang: str) -> HttpResponse:
        request = RequestFactory().get("/videos/")
        request.LANGUAGE_CODE = lang
        with translation.override(lang):
            return handler(request)

    return render


def _forbidden(request) -> HttpResponse:
    return defaults.permission_denied(request, PermissionError())


def _rate_limited(request) -> HttpResponse:
    from accounts.views import rate_limited

    return rate_limited(request)


# --- The pages -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One portal page, seen logged in or out. `url`: a URL name, a path, or a function of
    the user giving the path of what it made; `arrange`: what the page should show first.
    The user is the one logged in, or for a logged-out page a confirmed user the page may
    be about (an unsubscribe link, a password reset key). `status` and `lands` (a pattern
    for the address, when it redirects) make sure the page checked is the page meant, not
    a login redirect. `act`: what a person does on the page before the check; `rendered`:
    the error handler whose page is checked instead."""

    name: str
    logged_in: bool
    url: str | Callable[[User], str] = "/"
    arrange: Callable[[User], object] | None = None
    status: int = 200
    lands: str | None = None
    act: Callable[[Page], None] | None = None
    rendered: Callable[[str], HttpResponse] | None = None

    def path(self, user: User) -> str:
        if self.arrange is not None:
            self.arrange(user)
        if callable(self.url):
            return self.url(user)
        return self.url if self.url.startswith("/") else reverse(self.url)


def detail_of(status: str, **fields) -> Callable[[User], str]:
    return lambda user: reverse("generation-detail", args=[video(user, status, **fields).pk])


def unsubscribe_link(topic: str) -> Callable[[User], str]:
    return lambda user: reverse(
        "notifications-unsubscribe", args=[make_token(user_id=user.pk, topic=topic)]
    )


def paused_dispatch(user: User) -> None:
    """Videos delayed (our fal account paused): the banner, and a card that waits."""
    FalAccount.objects.update_or_create(pk=1, defaults={"dispatch_paused": True})
    video(user, Status.PENDING)


def make_token_for(user: User) -> None:
    tokens.create_token(user=user, name="CI")


VISITS = [
    # Logged out.
    Visit("landing", False, "/"),
    Visit("login", False, "account_login"),
    Visit("signup", False, "account_signup"),
    Visit("password-reset", False, "account_reset_password"),
    Visit("password-reset-done", False, "account_reset_password_done"),
    Visit("password-reset-key", False, reset_key_path, lands=r"/key/\w+-set-password/$"),
    Visit("password-reset-bad-key", False, "/accounts/password/reset/key/zz-bad-key/"),
    Visit("password-reset-key-done", False, "account_reset_password_from_key_done"),
    Visit("verification-sent", False, "account_email_verification_sent"),
    Visit("confirm-email", False, confirm_email_path),
    Visit("account-inactive", False, "account_inactive"),
    Visit("mfa-authenticate", False, totp_user, act=log_in_with_totp_user),
    Visit("third-party-login-canceled", False, "socialaccount_login_cancelled"),
    Visit("third-party-login-error", False, "socialaccount_login_error", status=401),
    Visit("unsubscribe", False, unsubscribe_link("video")),
    Visit("unsubscribe-done", False, unsubscribe_link("low_balance"), act=post_unsubscribe),
    Visit("unsubscribe-invalid", False, "/notifications/unsubscribe/not-a-token/", status=400),
    Visit("404", False, "/no-such-page/", status=404),
    Visit("403-csrf", False, "account_login", act=post_without_csrf),
    Visit("403", False, status=403, rendered=_rendered(_forbidden)),
    Visit("429", False, status=429, rendered=_rendered(_rate_limited)),
    Visit("500", False, status=500, rendered=_rendered(errors.server_error)),
    # Logged in.
    Visit("studio", True, "/"),
    Visit("studio-try-again", True, lambda user: f"/?from={video(user, Status.FAILED).pk}"),
    Visit("video-list", True, "generation-list", arrange=one_of_each),
    Visit("video-list-delayed", True, "generation-list", arrange=paused_dispatch),
    Visit("video-pending", True, detail_of(Status.PENDING)),
    Visit("video-queued", True, detail_of(Status.QUEUED)),
    Visit("video-running", True, detail_of(Status.RUNNING)),
    Visit("video-succeeded", True, detail_of(Status.SUCCEEDED)),
    Visit("video-failed", True, detail_of(Status.FAILED)),
    Visit("video-canceled", True, detail_of(Status.CANCELED)),
    Visit(
        "video-hidden",
        True,
        detail_of(Status.SUCCEEDED, moderation_state="hidden", moderation_reason="Not allowed"),
    ),
    Visit("credits", True, "credits", arrange=with_spending_and_packs),
    Visit(
        "purchase-success",
        True,
        lambda user: reverse("purchase-success", args=[purchase(user, paid=True).pk]),
    ),
    Visit(
        "purchase-cancel",
        True,
        lambda user: reverse("purchase-cancel", args=[purchase(user, paid=False).pk]),
    ),
    Visit("voucher-redeem", True, "voucher-redeem"),
    Visit("tokens", True, "tokens", arrange=make_token_for),
    Visit("notification-settings", True, "notification-settings"),
    Visit("account-settings", True, account_settings_path),
    Visit("password-change", True, "account_change_password"),
    Visit("email-addresses", True, "account_email"),
    Visit("reauthenticate", True, "account_reauthenticate"),
    Visit("two-factor", True, "mfa_index"),
    Visit("two-factor-activate", True, "mfa_activate_totp"),
    Visit("two-factor-on", True, "mfa_index", arrange=with_totp),
    Visit("two-factor-deactivate", True, "mfa_deactivate_totp", arrange=with_totp),
    Visit("recovery-codes", True, "mfa_view_recovery_codes", arrange=with_totp),
    Visit("third-party-connections", True, "socialaccount_connections"),
    Visit("404-logged-in", True, "/videos/no-such-video/", status=404),
]


# --- Browser contexts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def contexts(browser: Browser, live_server) -> Iterator[dict[tuple[str, bool], BrowserContext]]:
    """One context per language and login state, for the whole module."""
    made = {
        (lang, logged_in): browser.new_context(viewport=DESKTOP, base_url=live_server.url)
        for lang in LANGUAGES
        for logged_in in (False, True)
    }
    yield made
    for context in made.values():
        context.close()


def language_cookie(lang: str, url: str) -> dict:
    return {"name": settings.LANGUAGE_COOKIE_NAME, "value": lang, "url": url}


def session_cookie(user: User, url: str) -> dict:
    """A session made by allauth's own login and reauthenticate forms (the two-factor
    pages ask for a fresh password), handed to the browser."""
    client = Client()
    response = client.post(reverse("account_login"), {"login": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:500]
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:500]
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    return {"name": cookie.key, "value": cookie.value, "url": url}


def open_as(contexts, live_server, *, lang: str, user: User | None) -> Page:
    """A new page in the context of this language and login state, its cookies set anew."""
    context = contexts[(lang, user is not None)]
    context.clear_cookies()
    cookies = [language_cookie(lang, live_server.url)]
    if user is not None:
        cookies.append(session_cookie(user, live_server.url))
    context.add_cookies(cookies)
    return context.new_page()


# --- The check -----------------------------------------------------------------------------


def blocking_violations(page: Page) -> list[dict]:
    results = AXE.run(page)
    return [v for v in results.response["violations"] if v["impact"] in BLOCKING]


def report(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"  {violation['helpUrl']}")
        for node in violation["nodes"][:8]:
            target = " ".join(str(part) for part in node["target"])
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"    at {target}: {summary}")
    return "\n".join(lines)


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("visit", VISITS, ids=[visit.name for visit in VISITS])
def test_page_has_no_serious_accessibility_violations(
    visit: Visit, lang: str, contexts, live_server, settings
):
    settings.STRIPE_SECRET_KEY = "sk_test_axe"  # packs are on sale (no call to Stripe)
    user = person(credits=2000)
    page = open_as(contexts, live_server, lang=lang, user=user if visit.logged_in else None)
    try:
        path = visit.path(user) if visit.rendered is None else "/videos/"
        if visit.rendered is not None:
            response = visit.rendered(lang)
            page.route(
                f"{live_server.url}{path}",
                lambda route: route.fulfill(
                    status=response.status_code,
                    body=response.content,
                    headers={"Content-Type": response["Content-Type"]},
                ),
            )
        answer = page.goto(path)
        assert answer is not None and answer.status == visit.status, (visit.name, answer)
        address = urlsplit(page.url)
        landed = address.path + (f"?{address.query}" if address.query else "")
        assert re.search(visit.lands, landed) if visit.lands else landed == path, landed
        if visit.act is not None:
            visit.act(page)
        expect(page.locator("html")).to_have_attribute("lang", re.compile(rf"^{lang}\b"))
        violations = blocking_violations(page)
        assert not violations, (
            f"{visit.name} [{lang}] at {page.url}: "
            f"{len(violations)} serious or critical violations\n{report(violations)}"
        )
    finally:
        page.close()


# --- Screenshots ---------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_screenshots_of_the_first_visit_and_the_studio(
    lang: str, contexts, live_server, settings, screenshot
):
    """The set of issue 14, per language: the landing page, the studio, a running card
    with its estimate, a failed card with Try again, and the credits chart."""
    settings.GENERATION_TYPICAL_SECONDS = 120
    settings.STRIPE_SECRET_KEY = "sk_test_axe"
    user = person(credits=2000)
    with_spending_and_packs(user)
    running = still(video(user, Status.RUNNING, prompt="A lighthouse in a storm, waves breaking"))
    failed = still(video(user, Status.FAILED, prompt="A red kite over green hills at noon"))

    page = open_as(contexts, live_server, lang=lang, user=None)
    page.goto("/")
    expect(page.get_by_test_id("price-table")).to_be_visible()
    screenshot("landing", page, lang=lang)
    page.close()

    page = open_as(contexts, live_server, lang=lang, user=user)
    try:
        page.goto("/")
        expect(page.get_by_test_id("price")).to_be_visible()
        screenshot("studio", page, lang=lang)

        page.goto(reverse("generation-list"))
        running_card = page.locator(f"#card-{running.pk}")
        expect(running_card.get_by_test_id("estimate")).to_be_visible()
        screenshot("running-card", running_card, lang=lang)
        failed_card = page.locator(f"#card-{failed.pk}")
        expect(failed_card.get_by_test_id("try-again")).to_be_visible()
        screenshot("failed-card", failed_card, lang=lang)

        page.goto(reverse("credits"))
        chart = page.get_by_test_id("spending-chart")
        expect(chart).to_be_visible()
        screenshot("credits-chart", page.locator("section", has=chart).first, lang=lang)
    finally:
        page.close()
