"""The credit ledger as CSV, for the portal's download (`/credits/export.csv`) and the API
(`GET /api/v1/ledger/?format=csv`): one definition of the columns and of the cells.

All of the owner's entries, oldest first (so `balance_after` reads as a running balance),
streamed: rows are read from the database in chunks while the response is sent, so a long
ledger never sits in memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.cache import patch_cache_control

from accounts.models import LedgerEntry, User

COLUMNS = ("date", "kind", "amount", "balance_after", "generation_id", "reason")
CONTENT_TYPE = "text/csv; charset=utf-8"
CHUNK_SIZE = 2000
# OWASP "CSV Injection": a text cell starting with one of these is a formula to a
# spreadsheet; a leading apostrophe makes it text again.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` as a spreadsheet will not run it. Numbers stay numbers (-320 is a number,
    not a formula); text that could start a formula is prefixed with an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# Entries whose reason the services write as a code (a failure code, a refund policy's
# settlement): the generation's page says it in words, so the owner's ledger leaves it out.
CODED_REASON_KINDS = frozenset({LedgerEntry.Kind.RELEASE, LedgerEntry.Kind.CAPTURE})


def owner_reason(*, kind: str, reason: str) -> str:
    """An entry's reason as its owner may read it: codes left out, words people wrote (a
    refund, a correction, a grant, a purchase) kept."""
    return "" if kind in CODED_REASON_KINDS else reason


def ledger_rows(*, user: User, tz: tzinfo = UTC) -> Iterator[tuple[Any, ...]]:
    """The header, then one row per ledger entry of `user`, oldest first, read lazily."""
    yield COLUMNS
    entries = (
        LedgerEntry.objects.filter(account__user_id=user.pk)
        .order_by("created_at", "id")
        .values_list("created_at", "kind", "amount", "balance_after", "generation_id", "reason")
    )
    for created_at, kind, amount, balance_after, generation_id, reason in entries.iterator(
        chunk_size=CHUNK_SIZE
    ):
        yield (
            created_at.astimezone(tz).isoformat(),
            kind,
            amount,
            balance_after,
            str(generation_id) if generation_id else "",
            owner_reason(kind=kind, reason=reason),
        )


class _Echo:
    """A file-like object whose write hands back the line: csv.writer formats, the
    response streams (Django's documented recipe)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])


def filename(*, now: datetime | None = None, tz: tzinfo = UTC) -> str:
    day = (now or timezone.now()).astimezone(tz).date()
    return f"ledger-{day.isoformat()}.csv"


def csv_response(*, user: User, tz: tzinfo = UTC) -> StreamingHttpResponse:
    """The download: all of `user`'s entries, streamed, as an attachment named with
    today's date. Nothing is read from the database until the body is sent."""
    response = StreamingHttpResponse(
        csv_lines(ledger_rows(user=user, tz=tz)), content_type=CONTENT_TYPE
    )
    response["Content-Disposition"] = f'attachment; filename="{filename(tz=tz)}"'
    patch_cache_control(response, private=True, no_store=True)
    return response
