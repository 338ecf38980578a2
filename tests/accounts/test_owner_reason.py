"""What owners read of ledger reasons: releases and captures carry codes the services
record (the generation's page says them in words), so they are left out, also codes
added later; words people wrote stay, single words included."""

from __future__ import annotations

import pytest

from accounts.ledger_export import owner_reason
from accounts.models import LedgerEntry
from generations import wording

Kind = LedgerEntry.Kind


@pytest.mark.parametrize(
    "kind, reason",
    [
        *[(Kind.RELEASE, code) for code in wording.FAILURE_REASONS],
        (Kind.RELEASE, "some_code_added_later"),
        (Kind.CAPTURE, "content_policy: charged 50% by policy"),
        (Kind.RELEASE, "canceled_after_start: charged 25% by policy"),
    ],
)
def test_codes_the_services_record_are_left_out(kind, reason):
    assert owner_reason(kind=kind, reason=reason) == ""


@pytest.mark.parametrize(
    "kind, reason",
    [
        (Kind.REFUND, "goodwill"),
        (Kind.REFUND, "duplicate"),
        (Kind.ADJUSTMENT, "refund: video was blank"),
        (Kind.GRANT, "Welcome credits"),
        (Kind.TOPUP, "Purchase #3: Starter"),
    ],
)
def test_words_people_wrote_stay(kind, reason):
    assert owner_reason(kind=kind, reason=reason) == reason
