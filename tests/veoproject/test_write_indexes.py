"""What an accept writes besides its rows: every index on the generation and ledger
tables that a new row enters. Each one costs the database on the hottest write path, so
the list is pinned: a new one is added here on purpose, with a reason, or made partial."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.pg,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="reads PostgreSQL's catalogue of indexes: runs in make test's PostgreSQL pass "
        "(make test-pg); SQLite builds its own indexes",
    ),
]

# Indexes every new row enters (no WHERE, or a WHERE every new row of its kind meets).
EVERY_ROW = {
    "generations_generation": {
        "generations_generation_pkey",
        "generations_generation_quote_id_key",  # one generation per quote (NULLs too)
        "gen_owner_created",  # a user's gallery and API list
        "gen_owner_status",  # a user's in-flight count
        "gen_status_next_poll",  # the sweep's due generations
        "gen_moderation",  # the moderation queue
        "gen_idempotency_key_per_owner",  # replays (only rows with a key)
    },
    "accounts_ledgerentry": {
        "accounts_ledgerentry_pkey",
        "ledger_idempotency_key",  # every movement is idempotent by key
        "accounts_le_account_d6d4ec_idx",  # an account's history, newest first
        "accounts_ledgerentry_created_at_cc78673f",  # the ledger admin, newest first
        "accounts_ledgerentry_generation_id_82bdf01c",  # a generation's entries
        "ledger_one_hold_per_generation",  # holds (accept writes one)
    },
}
# Partial indexes no accept enters: a fal request id, a moderator, a voucher, a staff
# actor, a settlement, a refund, our own waiting queue (only with FAL_MAX_CONCURRENCY).
NOT_AT_ACCEPT = {
    "gen_fal_request",
    "gen_moderated_by",
    "gen_waiting_queue",
    "ledger_voucher",
    "ledger_actor",
    "ledger_one_settlement_per_generation",
    "ledger_one_refund_per_generation",
}


def indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


@pytest.mark.parametrize("table", sorted(EVERY_ROW))
def test_the_indexes_a_new_row_enters_are_the_ones_listed(table):
    found = indexes(table)
    whole = {name for name, definition in found.items() if " WHERE " not in definition}
    partial = set(found) - whole
    assert whole | (partial - NOT_AT_ACCEPT) == EVERY_ROW[table]
    assert not any("varchar_pattern_ops" in definition for definition in found.values())
