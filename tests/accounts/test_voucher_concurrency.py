"""Vouchers redeemed concurrently, with real threads each on its own connection.

Marked `pg`: `make test` runs this on SQLite and again on PostgreSQL, where the row lock of
the conditional UPDATE and the unique constraints decide the races.
"""

from __future__ import annotations

import pytest

from accounts import ledger, vouchers
from accounts.models import LedgerEntry, Voucher, VoucherRedemption
from tests.factories import UserFactory
from tests.races import race

pytestmark = [pytest.mark.pg, pytest.mark.django_db(transaction=True)]


def test_20_users_race_for_a_5_use_voucher_and_exactly_5_win():
    staff = UserFactory(is_staff=True)
    [voucher] = vouchers.create_vouchers(amount=100, actor=staff, max_uses=5)
    users = [UserFactory() for _ in range(20)]

    results = [
        value for _, value in race(20, lambda i: vouchers.redeem(user=users[i], code=voucher.code))
    ]

    won = [r for r in results if isinstance(r, vouchers.Redemption)]
    lost = [r for r in results if isinstance(r, vouchers.VoucherUsedUp)]
    assert (len(won), len(lost)) == (5, 15), results
    voucher.refresh_from_db()
    assert voucher.uses == 5
    assert VoucherRedemption.objects.count() == 5
    assert LedgerEntry.objects.filter(voucher=voucher).count() == 5
    assert ledger.broken_accounts() == []


def test_one_user_racing_a_voucher_is_credited_once():
    staff = UserFactory(is_staff=True)
    [voucher] = vouchers.create_vouchers(amount=100, actor=staff, max_uses=50)
    user = UserFactory()

    results = [
        value for _, value in race(10, lambda i: vouchers.redeem(user=user, code=voucher.code))
    ]

    won = [r for r in results if isinstance(r, vouchers.Redemption)]
    assert len(won) == 1, results
    assert all(isinstance(r, vouchers.VoucherAlreadyRedeemed) for r in results if r not in won), (
        results
    )
    assert Voucher.objects.get(pk=voucher.pk).uses == 1
    assert user.credit_account.__class__.objects.get(user=user).balance == 100
    assert ledger.broken_accounts() == []
