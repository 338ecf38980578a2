from __future__ import annotations

from accounts import ledger
from accounts.models import CreditAccount
from generations.pricing import quote


def test_new_user_has_an_account_and_credits(user):
    account = CreditAccount.objects.get(user=user)
    assert (account.balance, account.reserved) == (1000, 0)
    assert ledger.broken_accounts() == []


def test_quote_uses_seeded_prices(db):
    assert quote(duration="8s", resolution="1080p", generate_audio=True).credits == 320
    assert quote(duration="4s", resolution="720p", generate_audio=False).credits == 80
