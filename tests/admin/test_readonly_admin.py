"""Credit accounts, ledger entries, API tokens and the audit trail are read-only, for
everybody; tokens can be revoked, never shown."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts import tokens
from accounts.groups import MODERATOR_PERMISSIONS, MODERATORS
from accounts.models import ApiToken, CreditAccount, LedgerEntry
from tests.admin.actions import changelist, run_action


@pytest.mark.parametrize("model", [CreditAccount, LedgerEntry, ApiToken, LogEntry])
def test_superuser_cannot_add_change_or_delete(admin_client_for, superuser, user, model):
    tokens.create_token(user=user, name="ci")
    from accounts import staff

    staff.suspend_user(user=user, actor=superuser, reason="make a log entry")
    obj = model.objects.first()
    opts = model._meta
    client = admin_client_for(superuser)

    assert client.get(changelist(model)).status_code == 200
    assert client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add")).status_code == 403
    assert (
        client.get(
            reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk])
        ).status_code
        == 403
    )
    change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    page = client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(change, {}).status_code == 403


def test_credit_account_change_post_cannot_edit_a_balance(admin_client_for, superuser, user):
    account = CreditAccount.objects.get(user=user)

    admin_client_for(superuser).post(
        reverse("admin:accounts_creditaccount_change", args=[account.pk]),
        {"balance": 999_999, "reserved": 0},
    )

    account.refresh_from_db()
    assert account.balance == 1000


def test_ledger_filters_by_kind_and_staff(admin_client_for, superuser, user):
    from accounts import ledger

    ledger.grant(user=user, amount=5, reason="by staff", actor=superuser)
    client = admin_client_for(superuser)

    by_staff = client.get(changelist(LedgerEntry), {"made_by": "staff"})
    grants = client.get(changelist(LedgerEntry), {"kind__exact": "grant", "q": user.username})

    assert [e.reason for e in by_staff.context["cl"].result_list] == ["by staff"]
    assert len(grants.context["cl"].result_list) == 2


def test_token_admin_never_shows_the_secret_or_its_hash(admin_client_for, superuser, user):
    token, raw = tokens.create_token(user=user, name="deploy bot")
    client = admin_client_for(superuser)

    pages = [
        client.get(changelist(ApiToken)).content.decode(),
        client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content.decode(),
    ]

    for body in pages:
        assert "deploy bot" in body and token.prefix in body
        assert raw.rsplit("_", 1)[1] not in body
        assert token.token_hash not in body


def test_revoke_action_stops_the_token_and_is_recorded(admin_client_for, superuser, user):
    token, raw = tokens.create_token(user=user, name="leaked")

    response = run_action(admin_client_for(superuser), ApiToken, "revoke", [token])

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    with pytest.raises(tokens.TokenInvalid):
        tokens.authenticate_token(raw)
    assert LogEntry.objects.get(object_id=str(token.pk)).change_message == "Revoked by staff"


def test_audit_trail_lists_staff_actions(admin_client_for, superuser, user):
    from accounts import staff

    staff.suspend_user(user=user, actor=superuser, reason="Chargeback fraud")

    response = admin_client_for(superuser).get(changelist(LogEntry))

    body = response.content.decode()
    assert "Suspended: Chargeback fraud" in body
    assert superuser.username in body


def test_moderators_group_has_exactly_its_permissions(db):
    group = Group.objects.get(name=MODERATORS)

    granted = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in group.permissions.select_related("content_type")
    }

    assert granted == set(MODERATOR_PERMISSIONS)
    for forbidden in [
        "accounts.correct_credits",
        "generations.refund_generation",
        "generations.change_pricingrule",
        "accounts.add_voucher",
        "accounts.view_ledgerentry",
    ]:
        assert forbidden not in granted


def test_moderator_sees_generations_and_users_but_not_money(admin_client_for, moderator):
    client = admin_client_for(moderator)

    from accounts.models import User, Voucher
    from generations.models import Generation, PricingRule

    for model in (Generation, User):
        assert client.get(changelist(model)).status_code == 200
    for model in (CreditAccount, LedgerEntry, PricingRule, Voucher, ApiToken):
        assert client.get(changelist(model)).status_code == 403
