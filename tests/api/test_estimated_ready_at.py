"""`estimated_ready_at` in a generation's JSON: an ISO datetime while it is in flight
(generations/estimates.py), null once final, and documented in the OpenAPI schema."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from generations.models import Generation
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db


def test_an_in_flight_generation_says_when_it_will_be_ready(api, user, settings):
    settings.GENERATION_TYPICAL_SECONDS = 120
    sent = timezone.now() - timedelta(seconds=30)
    generation = GenerationFactory(
        owner=user, status=Generation.Status.RUNNING, submitted_at=sent, started_at=sent
    )

    body = api.get(f"/api/v1/generations/{generation.pk}/").json()

    assert parse_datetime(body["estimated_ready_at"]) == sent + timedelta(seconds=120)


def test_the_list_carries_it_for_each_row(api, user):
    pending = GenerationFactory(owner=user)
    done = GenerationFactory(owner=user, status=Generation.Status.SUCCEEDED)

    rows = {row["id"]: row for row in api.get("/api/v1/generations/").json()["results"]}

    assert parse_datetime(rows[str(pending.pk)]["estimated_ready_at"]) > timezone.now()
    assert rows[str(done.pk)]["estimated_ready_at"] is None


@pytest.mark.parametrize(
    "status",
    [Generation.Status.SUCCEEDED, Generation.Status.FAILED, Generation.Status.CANCELED],
)
def test_it_is_null_once_final(api, user, status):
    generation = GenerationFactory(owner=user, status=status)

    body = api.get(f"/api/v1/generations/{generation.pk}/").json()

    assert "estimated_ready_at" in body
    assert body["estimated_ready_at"] is None


def test_a_create_answers_with_it(api, valid_body):
    response = api.post("/api/v1/generations/", valid_body, format="json")

    assert response.status_code in (201, 202), response.content
    assert parse_datetime(response.json()["estimated_ready_at"]) > timezone.now()


def test_the_schema_documents_it(client):
    schema = client.get("/api/schema/?format=json").json()

    field = schema["components"]["schemas"]["Generation"]["properties"]["estimated_ready_at"]
    assert field["type"] == "string"
    assert field["format"] == "date-time"
    assert field["nullable"] is True
    assert field["readOnly"] is True
    assert "null once it is final" in field["description"]
