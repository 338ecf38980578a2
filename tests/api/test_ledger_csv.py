"""The ledger as CSV: `GET /api/v1/ledger/?format=csv` (session or token) and the
definition both it and the portal's download use (accounts.ledger_export)."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import ledger
from accounts.ledger_export import COLUMNS, safe_cell
from accounts.models import LedgerEntry
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/ledger/?format=csv"


def body(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body(response))))


def test_csv_with_a_token_has_the_columns_and_every_entry_oldest_first(api, user):
    generation = GenerationFactory(owner=user, cost_credits=320)
    ledger.hold(generation=generation)
    ledger.capture(generation=generation)

    response = api.get(URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    today = timezone.now().date().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="ledger-{today}.csv"'
    assert "no-store" in response["Cache-Control"]
    text = body(response)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [row["kind"] for row in parsed] == ["grant", "hold", "capture"]
    grant, _hold, capture = parsed
    assert grant["amount"] == "1000" and grant["reason"] == "test credits"
    assert grant["generation_id"] == ""
    assert capture == {
        "date": LedgerEntry.objects.get(kind="capture").created_at.isoformat(),
        "kind": "capture",
        "amount": "-320",  # a number, not escaped
        "balance_after": "680",
        "generation_id": str(generation.pk),
        "reason": "",
    }
    assert datetime.fromisoformat(capture["date"]).utcoffset() is not None


def test_csv_with_a_browser_session(session_api, user):
    ledger.adjust(user=user, amount=-5, reason="Rounding")
    response = session_api.get(URL)
    assert response.status_code == 200
    assert [row["reason"] for row in rows(response)] == ["test credits", "Rounding"]


def test_accept_text_csv_gives_the_same_download(api):
    response = api.get("/api/v1/ledger/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response.streaming
    assert [row["kind"] for row in rows(response)] == ["grant"]


def test_another_users_entries_are_never_included(api, user, other_user):
    ledger.grant(user=other_user, amount=7, reason="Not yours")
    other = GenerationFactory(owner=other_user, cost_credits=320)
    ledger.hold(generation=other)
    parsed = rows(api.get(URL))
    assert [row["kind"] for row in parsed] == ["grant"]
    assert "Not yours" not in str(parsed) and str(other.pk) not in str(parsed)


def test_formulas_are_escaped_and_failure_codes_left_out(api, user):
    ledger.adjust(user=user, amount=-1, reason='=HYPERLINK("http://evil.example","x")')
    ledger.adjust(user=user, amount=1, reason="+1+cmd|' /C calc'!A0")
    ledger.adjust(user=user, amount=-1, reason="-2+3")
    ledger.adjust(user=user, amount=1, reason="@SUM(1)")
    failed = GenerationFactory(owner=user, cost_credits=100)
    ledger.hold(generation=failed)
    ledger.release(generation=failed, reason="upstream_error")

    reasons = [row["reason"] for row in rows(api.get(URL))]

    assert reasons == [
        "test credits",
        '\'=HYPERLINK("http://evil.example","x")',
        "'+1+cmd|' /C calc'!A0",
        "'-2+3",
        "'@SUM(1)",
        "",  # the hold
        "",  # the release: an internal code, which the video's page says in words
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@A1", "'@A1"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        ("", ""),
        (-320, -320),
    ],
)
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def test_not_paginated_and_streamed(api, user):
    for n in range(120):
        ledger.grant(user=user, amount=1, reason=f"drip {n}")
    table = LedgerEntry._meta.db_table

    with CaptureQueriesContext(connection) as before:
        response = api.get(URL)
    assert response.streaming
    assert not [q for q in before.captured_queries if table in q["sql"]]  # nothing read yet

    with CaptureQueriesContext(connection) as during:
        parsed = rows(response)
    assert len(parsed) == 121
    assert [q for q in during.captured_queries if table in q["sql"]]


def test_json_stays_the_default(api):
    response = api.get("/api/v1/ledger/")
    assert response["Content-Type"] == "application/json"
    assert "results" in response.json()


def test_csv_without_credentials_is_a_json_401():
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_an_unknown_format_is_a_json_404(api):
    response = api.get("/api/v1/ledger/?format=xlsx")
    assert response.status_code == 404
    assert "error" in response.json()


def test_schema_documents_the_csv_format(client):
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/ledger/"]["get"]
    assert "text/csv" in operation["responses"]["200"]["content"]
    assert "application/json" in operation["responses"]["200"]["content"]
    (param,) = [p for p in operation["parameters"] if p["name"] == "format"]
    assert set(param["schema"]["enum"]) == {"json", "csv"}
