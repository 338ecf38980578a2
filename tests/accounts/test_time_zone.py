"""Times in the user's time zone (issue 14): the zone the browser detects at signup or
login, the account settings page, pages and emails that show times in the zone with its
name, the spending chart's local days, and the API that stays in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.messages import get_messages
from django.core import mail
from django.core.exceptions import ValidationError
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone, translation

from accounts import ledger, time_zones
from accounts.models import CreditPack, LedgerEntry, Purchase, User
from accounts.payments import fulfilment
from accounts.payments.stripe_gateway import CheckoutSession
from tests.factories import GenerationFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a quiet lighthouse 42"
TOKYO = "Asia/Tokyo"
# 00:14:05 UTC on 3 Dec 2026 is 09:14:05 in Tokyo (JST, +09), 01:14:05 in Berlin (CET).
MOMENT = datetime(2026, 12, 3, 0, 14, 5, tzinfo=UTC)
NOT_ZONES = ["Mars/Olympus_Mons", "localtime", "", "Europe/Berlin\x00", "x" * 5000, "../etc"]


def signup(client, time_zone: str | None, username: str = "ada") -> User:
    data = {
        "username": username,
        "email": f"{username}@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
    }
    if time_zone is not None:
        data["time_zone"] = time_zone
    response = client.post(reverse("account_signup"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    return User.objects.get(username=username)


def verified_user(**fields) -> User:
    user = UserFactory(**fields)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def log_in(client, user: User, **data):
    return client.post(
        reverse("account_login"),
        {"login": user.username, "password": "correct horse battery", **data},
    )


def render(source: str, **context) -> str:
    return Template("{% load local_time %}" + source).render(Context(context))


# --- Detection at signup and login ----------------------------------------------------------


def test_signup_and_login_forms_carry_the_field_the_script_fills(client):
    for name in ("account_signup", "account_login"):
        page = client.get(reverse(name)).content.decode()
        assert 'type="hidden" name="time_zone"' in page, name
        assert "data-detect-time-zone" in page, name
        assert "/static/js/timezone.js" in page, name


def test_signup_stores_the_zone_the_browser_detected(client):
    assert signup(client, TOKYO).time_zone == TOKYO


def test_signup_without_a_detected_zone_leaves_the_site_zone(client):
    assert signup(client, None).time_zone == ""


@pytest.mark.parametrize("bad", NOT_ZONES)
def test_signup_ignores_a_zone_that_is_not_one(client, bad):
    assert signup(client, bad).time_zone == ""


def test_login_stores_the_detected_zone_when_the_user_has_none(client):
    user = verified_user()
    response = log_in(client, user, time_zone="Europe/Berlin")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    user.refresh_from_db()
    assert user.time_zone == "Europe/Berlin"


def test_login_never_overwrites_a_zone_the_user_has(client):
    user = verified_user(time_zone="America/Chicago")
    assert log_in(client, user, time_zone=TOKYO).status_code == 302
    user.refresh_from_db()
    assert user.time_zone == "America/Chicago"


@pytest.mark.parametrize("bad", NOT_ZONES)
def test_login_with_a_zone_that_is_not_one_logs_in_and_stores_nothing(client, bad):
    user = verified_user()
    assert log_in(client, user, time_zone=bad).status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    user.refresh_from_db()
    assert user.time_zone == ""


def test_a_wrong_password_stores_no_zone(client):
    user = verified_user()
    response = client.post(
        reverse("account_login"), {"login": user.username, "password": "nope", "time_zone": TOKYO}
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.time_zone == ""


def test_remembering_a_detected_zone_only_fills_an_empty_one():
    user = UserFactory()
    assert time_zones.remember_detected_zone(user=user, name=TOKYO) is True
    assert time_zones.remember_detected_zone(user=user, name="Europe/Berlin") is False
    user.refresh_from_db()
    assert user.time_zone == TOKYO


def test_the_model_refuses_a_zone_that_is_not_one():
    user = UserFactory.build(username="zed", email="zed@example.com", time_zone="Mars/Olympus")
    with pytest.raises(ValidationError) as refused:
        user.full_clean()
    assert "time_zone" in refused.value.message_dict


# --- The account settings page --------------------------------------------------------------


def test_the_settings_page_is_for_logged_in_users(client):
    response = client.get("/account/")
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_the_settings_page_shows_the_current_zone_and_links_the_other_settings(client):
    user = UserFactory(time_zone=TOKYO)
    client.force_login(user)
    assert reverse("account-settings") == "/account/"
    page = client.get("/account/").content.decode()
    assert '<option value="Asia/Tokyo" selected>Tokyo</option>' in page
    assert '<optgroup label="Europe">' in page
    for code, name in settings.LANGUAGES:
        assert f'<option value="{code}">{name}</option>' in page
    assert f'href="{reverse("notification-settings")}"' in page
    assert f'href="{reverse("password_change")}"' in page
    # And the user menu links the page.
    menu = client.get(reverse("credits")).content.decode()
    assert f'href="{reverse("account-settings")}"' in menu


def test_a_zone_a_browser_reported_by_an_old_name_stays_selected(client):
    user = UserFactory(time_zone="Asia/Calcutta")
    client.force_login(user)
    page = client.get("/account/").content.decode()
    assert '<option value="Asia/Calcutta" selected>' in page


def test_the_settings_page_saves_the_zone_and_the_language(client):
    user = UserFactory()
    client.force_login(user)
    response = client.post("/account/", {"time_zone": "Europe/Berlin", "language": "de"})
    assert response.status_code == 302
    assert response.url == "/account/"
    user.refresh_from_db()
    assert (user.time_zone, user.language) == ("Europe/Berlin", "de")
    # The language is the session's at once, as Django's set_language would make it.
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "de"
    assert [m.level_tag for m in get_messages(response.wsgi_request)] == ["success"]


def test_empty_choices_mean_the_sites_zone_and_the_browsers_language(client):
    user = UserFactory(time_zone=TOKYO, language="de")
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "de"
    response = client.post("/account/", {"time_zone": "", "language": ""})
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.time_zone, user.language) == ("", "")
    assert time_zones.zone_of(user) == timezone.get_default_timezone()
    # The language cookie goes: the browser's Accept-Language decides again.
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == ""
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME]["max-age"] == 0


@pytest.mark.parametrize(
    "data, field",
    [
        ({"time_zone": "Mars/Olympus_Mons", "language": ""}, "time_zone"),
        ({"time_zone": "localtime", "language": ""}, "time_zone"),
        ({"time_zone": "x" * 5000, "language": ""}, "time_zone"),
        ({"time_zone": TOKYO, "language": "xx"}, "language"),
    ],
)
def test_the_settings_page_refuses_what_is_not_offered(client, data, field):
    user = UserFactory(time_zone="Europe/Berlin")
    client.force_login(user)
    response = client.post("/account/", data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert 'class="form-errors"' in response.content.decode() or "errorlist" in (
        response.content.decode()
    )
    user.refresh_from_db()
    assert (user.time_zone, user.language) == ("Europe/Berlin", "")


# --- Times shown in the zone, with its name -------------------------------------------------


def test_the_filter_shows_the_time_in_the_active_zone_with_its_name():
    with timezone.override(ZoneInfo(TOKYO)):
        assert render("{{ t|local_time }}", t=MOMENT) == (
            '<time datetime="2026-12-03T09:14:05+09:00">3 Dec 2026, 09:14 JST</time>'
        )
        assert render('{{ t|local_time:"seconds" }}', t=MOMENT).endswith(
            ">3 Dec 2026, 09:14:05 JST</time>"
        )
        assert render('{{ t|local_time:"short" }}', t=MOMENT).endswith(">3 Dec, 09:14 JST</time>")
        assert render("{{ t|local_time_text }}", t=MOMENT) == "3 Dec 2026, 09:14 JST"
    with timezone.override(ZoneInfo("Europe/Berlin")):
        assert render("{{ t|local_time_text }}", t=MOMENT) == "3 Dec 2026, 01:14 CET"
        summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
        assert render("{{ t|local_time_text }}", t=summer) == "1 Jul 2026, 14:00 CEST"
    with timezone.override(ZoneInfo("Asia/Dubai")):  # a zone without an abbreviation
        assert render("{{ t|local_time_text }}", t=MOMENT) == "3 Dec 2026, 04:14 +04"


def test_the_filter_follows_the_active_language():
    with timezone.override(ZoneInfo("Europe/Berlin")), translation.override("de"):
        assert "Dez" in render("{{ t|local_time_text }}", t=MOMENT)


def test_the_brief_styles_keep_the_full_time_in_a_title():
    with timezone.override(ZoneInfo(TOKYO)):
        date_only = render('{{ t|local_time:"date" }}', t=MOMENT)
        relative = render('{{ t|local_time:"relative" }}', t=timezone.now() - timedelta(minutes=5))
    assert date_only == (
        '<time datetime="2026-12-03T09:14:05+09:00" title="3 Dec 2026, 09:14 JST">3 Dec 2026</time>'
    )
    assert "5\xa0minutes ago</time>" in relative and 'title="' in relative and "JST" in relative


def test_the_filter_shows_nothing_for_no_time():
    assert render("{{ t|local_time }}|{{ t|local_time_text }}", t=None) == "|"


def test_the_ledger_and_the_generation_page_show_times_in_the_users_zone(client):
    user = UserFactory(time_zone=TOKYO, credits=1000)
    generation = GenerationFactory(owner=user)
    LedgerEntry.objects.filter(account__user=user).update(created_at=MOMENT)
    type(generation).objects.filter(pk=generation.pk).update(created_at=MOMENT)
    client.force_login(user)

    credits_page = client.get(reverse("credits")).content.decode()
    assert '<time datetime="2026-12-03T09:14:05+09:00">3 Dec, 09:14 JST</time>' in credits_page
    detail = client.get(reverse("generation-detail", args=[generation.pk])).content.decode()
    assert ">3 Dec 2026, 09:14:05 JST</time>" in detail


def test_a_user_without_a_zone_and_the_next_request_see_the_sites_zone(client):
    user = UserFactory(credits=1000)
    LedgerEntry.objects.filter(account__user=user).update(created_at=MOMENT)
    client.force_login(user)
    assert ">3 Dec, 00:14 UTC</time>" in client.get(reverse("credits")).content.decode()
    tokyo = UserFactory(time_zone=TOKYO)
    client.force_login(tokyo)
    client.get(reverse("credits"))
    # The zone is the request's only: nothing stays active on this thread after it.
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE


def test_the_api_stays_in_utc_for_a_user_with_a_zone(client):
    user = UserFactory(time_zone=TOKYO)
    generation = GenerationFactory(owner=user)
    type(generation).objects.filter(pk=generation.pk).update(created_at=MOMENT)
    client.force_login(user)  # a session, as the portal's own scripts would call it
    body = client.get(f"/api/v1/generations/{generation.pk}/").json()
    assert body["created_at"] in ("2026-12-03T00:14:05Z", "2026-12-03T00:14:05+00:00")


def test_the_ledger_csv_stays_in_utc_for_a_user_with_a_zone(client):
    user = UserFactory(time_zone=TOKYO, credits=1000)
    LedgerEntry.objects.filter(account__user=user).update(created_at=MOMENT)
    client.force_login(user)
    response = client.get(reverse("ledger-csv"))
    assert "2026-12-03T00:14:05+00:00" in b"".join(response.streaming_content).decode()


# --- The spending chart's days --------------------------------------------------------------


@pytest.mark.pg  # grouping by local day is database SQL
def test_the_spending_chart_counts_days_in_the_users_zone(client):
    user = UserFactory(time_zone=TOKYO, credits=1000)
    tokyo = ZoneInfo(TOKYO)
    # 00:30 yesterday in Tokyo: the day before yesterday in UTC (15:30).
    yesterday = timezone.now().astimezone(tokyo).date() - timedelta(days=1)
    when = datetime(yesterday.year, yesterday.month, yesterday.day, 0, 30, tzinfo=tokyo)
    generation = GenerationFactory(owner=user, cost_credits=320)
    ledger.hold(generation=generation)
    capture = ledger.capture(generation=generation)
    LedgerEntry.objects.filter(pk=capture.pk).update(created_at=when)
    client.force_login(user)

    spending = client.get(reverse("credits")).context["spending"]
    assert spending.zone == TOKYO
    assert {day.day: day.credits for day in spending.days if day.credits} == {yesterday: 320}


# --- Emails in the recipient's zone ---------------------------------------------------------


@pytest.mark.pg
def test_the_receipt_email_shows_the_payment_time_in_the_recipients_zone(
    django_capture_on_commit_callbacks,
):
    user = UserFactory(time_zone=TOKYO)
    pack = CreditPack.objects.create(name="Studio pack", credits=1200, price_cents=1250)
    purchase = Purchase.objects.create(
        user=user,
        pack=pack,
        credits=pack.credits,
        amount_cents=pack.price_cents,
        currency=pack.currency,
        stripe_session_id="cs_test_tz",
    )
    session = CheckoutSession(
        id="cs_test_tz", url=None, status="complete", payment_status="paid", payment_intent="pi"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert fulfilment.mark_paid(session) == "paid"

    purchase.refresh_from_db()
    assert purchase.paid_at is not None
    paid_in_tokyo = purchase.paid_at.astimezone(ZoneInfo(TOKYO)).strftime("%-d %b %Y, %H:%M JST")
    (message,) = mail.outbox
    assert paid_in_tokyo in message.body
    assert paid_in_tokyo in message.alternatives[0][0]
    # The worker's own zone is left as it was.
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE
