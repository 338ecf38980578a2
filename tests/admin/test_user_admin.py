"""The user admin: balances, suspend and reactivate, credit corrections."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import ledger, tokens
from accounts.models import LedgerEntry, User
from generations.models import Generation
from tests.admin.actions import changelist, run_action
from tests.credits import numbers
from tests.factories import UserFactory


def credits_url(user) -> str:
    return reverse("admin:accounts_user_credits", args=[user.pk])


def correction(operation: str, amount, reason: str = "Support ticket 42", key=None) -> dict:
    return {
        "operation": operation,
        "amount": amount,
        "reason": reason,
        "form_key": str(key or uuid.uuid4()),
    }


# --- List and detail ------------------------------------------------------------------------


def test_user_list_shows_balance_reserved_available(admin_client_for, superuser, held_generation):
    response = admin_client_for(superuser).get(changelist(User))

    body = response.content.decode()
    assert response.status_code == 200
    row = next(r for r in response.context["cl"].result_list if r.pk == held_generation.owner_id)
    assert (row.credit_account.balance, row.credit_account.reserved) == (1000, 320)
    assert "680" in body


def test_user_page_links_generations_ledger_and_credit_form(admin_client_for, superuser, user):
    response = admin_client_for(superuser).get(
        reverse("admin:accounts_user_change", args=[user.pk])
    )

    body = response.content.decode()
    assert f"owner__id__exact={user.pk}" in body
    assert f"account__user__id__exact={user.pk}" in body
    assert credits_url(user) in body
    assert "1000 available" in body


# --- Suspend and reactivate -----------------------------------------------------------------


def test_suspend_ends_sessions_stops_tokens_and_leaves_generations_running(
    admin_client_for, moderator, user, held_generation
):
    _, raw = tokens.create_token(user=user, name="ci")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/me/").status_code == 200
    browser = Client()
    browser.force_login(user)
    other = UserFactory()
    Client().force_login(other)

    response = run_action(
        admin_client_for(moderator), User, "suspend_users", [user], apply="1", reason="Spam"
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.is_active, user.suspension_reason) == (False, "Spam")
    # Token refused with our error shape; the browser session is gone.
    refused = api.get("/api/v1/me/")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_failed"
    assert browser.get(reverse("credits")).status_code == 302
    sessions = [s.get_decoded().get("_auth_user_id") for s in Session.objects.all()]
    assert str(user.pk) not in sessions and str(other.pk) in sessions
    # The generation in flight is untouched and its hold stays until it settles.
    held_generation.refresh_from_db()
    assert held_generation.status == Generation.Status.QUEUED
    assert numbers(user) == (1000, 320)
    assert LogEntry.objects.get(object_id=str(user.pk)).get_change_message() == "Suspended: Spam"


def test_reactivate_lets_the_user_back_in(admin_client_for, moderator, user):
    client = admin_client_for(moderator)
    run_action(client, User, "suspend_users", [user], apply="1", reason="Spam")

    run_action(client, User, "reactivate_users", [user], apply="1", reason="Appeal accepted")

    user.refresh_from_db()
    assert (user.is_active, user.suspension_reason) == (True, "")
    messages = set(
        LogEntry.objects.filter(object_id=str(user.pk)).values_list("change_message", flat=True)
    )
    assert messages == {"Suspended: Spam", "Reactivated: Appeal accepted"}


def test_suspend_needs_a_reason(admin_client_for, moderator, user):
    page = run_action(
        admin_client_for(moderator), User, "suspend_users", [user], apply="1", reason=" "
    )

    assert page.status_code == 200 and page.context["form"].errors
    user.refresh_from_db()
    assert user.is_active


def test_moderator_cannot_suspend_staff_nor_anybody_themselves(
    admin_client_for, moderator, superuser
):
    client = admin_client_for(moderator)

    run_action(client, User, "suspend_users", [superuser, moderator], apply="1", reason="x")

    superuser.refresh_from_db()
    moderator.refresh_from_db()
    assert superuser.is_active and moderator.is_active
    assert not LogEntry.objects.exists()


def test_is_active_is_not_editable_in_the_user_form(admin_client_for, superuser, user):
    response = admin_client_for(superuser).get(
        reverse("admin:accounts_user_change", args=[user.pk])
    )
    assert 'name="is_active"' not in response.content.decode()


# --- Credit corrections ---------------------------------------------------------------------


def test_grant_posts_a_ledger_entry_with_the_staff_member(admin_client_for, superuser, user):
    response = admin_client_for(superuser).post(credits_url(user), correction("grant", 250))

    assert response.status_code == 302
    assert numbers(user) == (1250, 0)
    entry = LedgerEntry.objects.filter(account__user=user).first()
    assert (entry.kind, entry.amount, entry.actor, entry.reason) == (
        "grant",
        250,
        superuser,
        "Support ticket 42",
    )
    assert "Granted 250 credits" in LogEntry.objects.get().change_message
    assert ledger.broken_accounts() == []


def test_deduct_posts_an_adjustment(admin_client_for, superuser, user):
    admin_client_for(superuser).post(credits_url(user), correction("deduct", 300))

    assert numbers(user) == (700, 0)
    entry = LedgerEntry.objects.filter(account__user=user).first()
    assert (entry.kind, entry.amount, entry.actor) == ("adjustment", -300, superuser)
    assert ledger.broken_accounts() == []


def test_deduct_cannot_take_reserved_credits(admin_client_for, superuser, user, held_generation):
    response = admin_client_for(superuser).post(credits_url(user), correction("deduct", 681))

    assert response.status_code == 200
    assert "680 are available" in str(response.context["form"].non_field_errors())
    assert numbers(user) == (1000, 320)
    assert not LogEntry.objects.exists()
    assert ledger.broken_accounts() == []


@pytest.mark.parametrize(
    "data",
    [
        correction("grant", 10, reason=""),
        correction("grant", 10, reason="   "),
        correction("grant", 0),
        correction("grant", -5),
        correction("grant", "ten"),
        correction("steal", 10),
        {"operation": "grant", "amount": 10, "reason": "no key"},
    ],
)
def test_invalid_corrections_change_nothing(admin_client_for, superuser, user, data):
    response = admin_client_for(superuser).post(credits_url(user), data)

    assert response.status_code == 200 and response.context["form"].errors
    assert numbers(user) == (1000, 0)


def test_a_double_submit_posts_once(admin_client_for, superuser, user):
    client = admin_client_for(superuser)
    key = uuid.uuid4()

    client.post(credits_url(user), correction("grant", 100, key=key))
    client.post(credits_url(user), correction("grant", 100, key=key))

    assert numbers(user) == (1100, 0)
    assert LogEntry.objects.count() == 1
    assert ledger.broken_accounts() == []


def test_moderator_cannot_change_credits(admin_client_for, moderator, user):
    client = admin_client_for(moderator)

    assert client.get(credits_url(user)).status_code == 403
    assert client.post(credits_url(user), correction("grant", 100)).status_code == 403
    assert numbers(user) == (1000, 0)


def test_normal_user_cannot_reach_the_credit_form(admin_client_for, user, other_user):
    response = admin_client_for(user).post(credits_url(other_user), correction("grant", 100))

    assert response.status_code == 302 and "/login/" in response.url
    assert numbers(other_user) == (1000, 0)
