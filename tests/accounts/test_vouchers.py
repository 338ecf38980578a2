"""Credit vouchers: creation by staff, redemption in the API and the portal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import ledger, vouchers
from accounts.models import LedgerEntry, Voucher, VoucherRedemption
from tests.admin.actions import changelist, run_action
from tests.credits import numbers
from tests.factories import UserFactory
from veoproject.exceptions import ValidationFailed

REDEEM_API = "/api/v1/vouchers/redeem/"


@pytest.fixture
def voucher(staff_user) -> Voucher:
    return vouchers.create_vouchers(amount=500, actor=staff_user, max_uses=2, note="launch")[0]


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- Creation -------------------------------------------------------------------------------


def test_generated_codes_are_unambiguous_and_unique(staff_user):
    batch = vouchers.create_vouchers(amount=100, count=200, actor=staff_user)

    codes = {v.code for v in batch}
    assert len(codes) == 200
    assert all(len(code) == 12 and set(code) <= set(vouchers.CODE_ALPHABET) for code in codes)
    assert not set("".join(codes)) & set("01OIL")
    assert LogEntry.objects.count() == 200


def test_create_in_the_admin_shows_the_new_codes(admin_client_for, superuser):
    response = admin_client_for(superuser).post(
        reverse("admin:accounts_voucher_add"),
        {"amount": 250, "count": 3, "max_uses": 1, "note": "conference"},
    )

    assert response.status_code == 200
    created = Voucher.objects.all()
    assert created.count() == 3
    body = response.content.decode()
    for v in created:
        assert vouchers.format_code(v.code) in body
        assert (v.amount, v.max_uses, v.uses, v.created_by, v.note) == (
            250,
            1,
            0,
            superuser,
            "conference",
        )


def test_a_chosen_code_is_normalized(staff_user):
    [voucher] = vouchers.create_vouchers(amount=50, actor=staff_user, code=" launch-2025 ")
    assert voucher.code == "LAUNCH2025"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 10, "max_uses": 0}, "max_uses"),
        ({"amount": 10, "count": 0}, "count"),
        ({"amount": 10, "count": 1001}, "count"),
        ({"amount": 10, "expires_at": timezone.now() - timedelta(days=1)}, "expires_at"),
        ({"amount": 10, "code": "abc"}, "code"),
        ({"amount": 10, "code": "ÄÖÜÄÖÜÄ"}, "code"),
        ({"amount": 10, "code": "GOODCODE", "count": 2}, "code"),
    ],
)
def test_invalid_vouchers_are_refused(staff_user, kwargs, field):
    with pytest.raises(ValidationFailed) as refused:
        vouchers.create_vouchers(actor=staff_user, **kwargs)
    assert field in refused.value.fields
    assert not Voucher.objects.exists()


def test_a_taken_chosen_code_is_refused(staff_user):
    vouchers.create_vouchers(amount=10, actor=staff_user, code="SPRING24")
    with pytest.raises(ValidationFailed):
        vouchers.create_vouchers(amount=10, actor=staff_user, code="spring-24")


def test_moderator_cannot_create_vouchers(admin_client_for, moderator):
    response = admin_client_for(moderator).post(
        reverse("admin:accounts_voucher_add"), {"amount": 10_000, "count": 1, "max_uses": 1}
    )
    assert response.status_code == 403
    assert not Voucher.objects.exists()


def test_expire_action_stops_redemption(admin_client_for, superuser, voucher, user):
    run_action(admin_client_for(superuser), Voucher, "expire", [voucher])

    with pytest.raises(vouchers.VoucherExpired):
        vouchers.redeem(user=user, code=voucher.code)
    assert numbers(user) == (1000, 0)


def test_csv_export_lists_codes(admin_client_for, superuser, voucher):
    response = run_action(admin_client_for(superuser), Voucher, "export_csv", [voucher])

    assert response["Content-Type"].startswith("text/csv")
    assert vouchers.format_code(voucher.code) in response.content.decode()


@pytest.mark.parametrize(
    ("note", "cell"),
    [
        ("", ""),
        ("spring promo", "spring promo"),
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("\tx", "'\tx"),
    ],
)
def test_csv_export_notes_are_formula_safe_and_empty_stays_empty(
    admin_client_for, superuser, voucher, note, cell
):
    import csv
    import io

    Voucher.objects.filter(pk=voucher.pk).update(note=note)
    response = run_action(admin_client_for(superuser), Voucher, "export_csv", [voucher])

    [header, row] = list(csv.reader(io.StringIO(response.content.decode())))
    assert row[header.index("note")] == cell


def test_voucher_admin_is_read_only(admin_client_for, superuser, voucher):
    client = admin_client_for(superuser)
    change = reverse("admin:accounts_voucher_change", args=[voucher.pk])

    client.post(change, {"amount": 1_000_000, "max_uses": 99})

    voucher.refresh_from_db()
    assert (voucher.amount, voucher.max_uses) == (500, 2)
    assert client.get(changelist(Voucher), {"q": voucher.code.lower()}).status_code == 200


# --- Redemption -----------------------------------------------------------------------------


def test_redeem_grants_once_per_user_with_the_voucher_recorded(user, voucher):
    redemption = vouchers.redeem(user=user, code=vouchers.format_code(voucher.code).lower())

    assert numbers(user) == (1500, 0)
    entry = redemption.entry
    assert (entry.kind, entry.amount, entry.voucher, entry.idempotency_key) == (
        "grant",
        500,
        voucher,
        f"voucher:{voucher.pk}:{user.pk}",
    )
    assert redemption.credits.available == 1500
    with pytest.raises(vouchers.VoucherAlreadyRedeemed):
        vouchers.redeem(user=user, code=voucher.code)
    assert numbers(user) == (1500, 0)
    voucher.refresh_from_db()
    assert voucher.uses == 1
    assert ledger.broken_accounts() == []


def test_redeem_never_past_max_uses(voucher):
    first, second, third = UserFactory(), UserFactory(), UserFactory()
    vouchers.redeem(user=first, code=voucher.code)
    vouchers.redeem(user=second, code=voucher.code)

    with pytest.raises(vouchers.VoucherUsedUp):
        vouchers.redeem(user=third, code=voucher.code)

    assert numbers(third) == (0, 0)
    voucher.refresh_from_db()
    assert voucher.uses == 2
    assert VoucherRedemption.objects.count() == 2


def test_expired_and_unknown_codes_are_refused(user, staff_user):
    [expired] = vouchers.create_vouchers(
        amount=10, actor=staff_user, expires_at=timezone.now() + timedelta(seconds=1)
    )
    Voucher.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(1))

    with pytest.raises(vouchers.VoucherExpired):
        vouchers.redeem(user=user, code=expired.code)
    for code in ["NOPE-NOPE-NOPE", "", " ", "x" * 500, "\u200b"]:
        with pytest.raises(vouchers.VoucherInvalid):
            vouchers.redeem(user=user, code=code)
    assert numbers(user) == (1000, 0)


def test_api_redeem_answers_the_grant_and_the_new_balance(api, user, voucher):
    response = api.post(REDEEM_API, {"code": voucher.code.lower()}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["credits"] == 500
    assert (body["balance"], body["reserved"], body["available"]) == (1500, 0, 1500)
    assert body["entry"]["kind"] == "grant" and body["entry"]["amount"] == 500
    assert body["code"] == vouchers.format_code(voucher.code)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"code": "WRONG-CODE"}, 400, "voucher_invalid"),
        ({}, 400, "invalid"),
        ({"code": "x" * 65}, 400, "invalid"),
    ],
)
def test_api_redeem_errors_in_our_shape(api, user, body, status, code):
    response = api.post(REDEEM_API, body, format="json")

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert numbers(user) == (1000, 0)


def test_api_redeem_twice_is_a_conflict(api, user, voucher):
    api.post(REDEEM_API, {"code": voucher.code}, format="json")
    response = api.post(REDEEM_API, {"code": voucher.code}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "voucher_already_redeemed"
    assert numbers(user) == (1500, 0)


def test_api_redeem_needs_authentication(voucher):
    response = APIClient().post(REDEEM_API, {"code": voucher.code}, format="json")
    assert response.status_code == 401


def test_guessing_is_throttled_in_the_api_and_the_portal(api, client, user, voucher, settings):
    settings.VOUCHER_REDEEM_RATE = "3/hour"
    for guess in ["AAAA", "BBBB", "CCCC"]:
        assert api.post(REDEEM_API, {"code": guess}, format="json").status_code == 400

    throttled = api.post(REDEEM_API, {"code": voucher.code}, format="json")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    # The portal shares the budget.
    client.force_login(user)
    page = client.post(reverse("voucher-redeem"), {"code": voucher.code})
    assert page.status_code == 200
    assert "Too many attempts" in str(page.context["form"].errors)
    assert numbers(user) == (1000, 0)


def test_portal_page_redeems_and_shows_errors(client, user, voucher):
    client.force_login(user)
    url = reverse("voucher-redeem")
    assert url == "/credits/redeem/"

    assert client.get(url).status_code == 200
    wrong = client.post(url, {"code": "nope-nope"})
    assert wrong.status_code == 200 and "not valid" in str(wrong.context["form"].errors)
    done = client.post(url, {"code": vouchers.format_code(voucher.code)})
    assert done.status_code == 302 and done.url == reverse("credits")
    again = client.post(url, {"code": voucher.code})
    assert "already redeemed" in str(again.context["form"].errors)
    assert numbers(user) == (1500, 0)


def test_portal_page_needs_login(client):
    response = client.get(reverse("voucher-redeem"))
    assert response.status_code == 302 and "login" in response.url


def test_redemptions_are_listed_on_the_voucher(admin_client_for, superuser, user, voucher):
    vouchers.redeem(user=user, code=voucher.code)

    response = admin_client_for(superuser).get(
        reverse("admin:accounts_voucher_change", args=[voucher.pk])
    )

    assert user.username in response.content.decode()
    assert LedgerEntry.objects.filter(voucher=voucher).count() == 1
