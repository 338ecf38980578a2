"""Binding quotes over the API: the quote answer, creates that carry a quote or a ceiling,
their 409s in our one error shape, and the price as line items in the generation JSON."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from generations import pricing
from generations.models import Generation, PricingRule, Quote
from tests.credits import numbers

GENERATIONS = "/api/v1/generations/"
QUOTE = "/api/v1/generations/quote/"


def reprice(rate: int) -> None:
    """Staff change the 1080p-with-audio price (the valid body's options)."""
    PricingRule.objects.filter(
        endpoint=django_settings.FAL_ENDPOINT, resolution="1080p", generate_audio=True, active=True
    ).update(credits_per_second=rate)


def quote(client, body: dict) -> dict:
    response = client.post(QUOTE, body, format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_a_quote_answers_its_id_expiry_and_line_items(api, user, valid_body, settings):
    settings.QUOTE_TTL_SECONDS = 120
    before = timezone.now()
    body = quote(api, valid_body)

    assert body["cost_credits"] == 320
    assert body["breakdown"]["credits_per_second"] == 40  # the old field, unchanged
    stored = Quote.objects.get(pk=uuid.UUID(body["quote_id"]))
    assert stored.owner == user and stored.cost_credits == 320
    expires_at = parse_datetime(body["expires_at"])
    assert expires_at is not None
    assert before + timedelta(seconds=119) <= expires_at <= timezone.now() + timedelta(seconds=121)
    lines = body["price_breakdown"]
    assert [line["item"] for line in lines] == ["model", "resolution", "audio"]
    assert lines[0]["value"] == "fal-ai/veo3.1/image-to-video"
    assert sum(line["credits"] for line in lines) == 320
    assert numbers(user) == (1000, 0)  # a quote charges nothing


def test_a_create_with_its_quote_is_charged_the_quoted_price_after_a_price_change(
    api, user, valid_body
):
    quoted = quote(api, valid_body)
    reprice(55)
    assert quote(api, valid_body)["cost_credits"] == 440

    response = api.post(GENERATIONS, {**valid_body, "quote_id": quoted["quote_id"]}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["cost_credits"] == 320
    assert body["price_breakdown"] == quoted["price_breakdown"]
    assert body["quote_id"] == quoted["quote_id"]
    assert numbers(user) == (1000, 320)
    detail = api.get(f"{GENERATIONS}{body['id']}/").json()
    assert detail["price_breakdown"] == quoted["price_breakdown"]
    assert detail["quote_id"] == quoted["quote_id"]


def test_a_create_without_a_quote_shows_its_line_items(api, valid_body):
    body = api.post(GENERATIONS, valid_body, format="json").json()
    assert sum(line["credits"] for line in body["price_breakdown"]) == body["cost_credits"] == 320
    assert body["quote_id"] is None


def test_an_older_generation_without_line_items_shows_null(api, user, valid_body):
    created = api.post(GENERATIONS, valid_body, format="json").json()
    Generation.objects.filter(pk=created["id"]).update(price_breakdown=[])
    assert api.get(f"{GENERATIONS}{created['id']}/").json()["price_breakdown"] is None


def test_an_expired_quote_is_a_409_quote_expired_with_the_price_now(api, user, valid_body):
    quoted = quote(api, valid_body)
    Quote.objects.filter(pk=quoted["quote_id"]).update(expires_at=timezone.now())
    reprice(50)

    response = api.post(GENERATIONS, {**valid_body, "quote_id": quoted["quote_id"]}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "quote_expired"
    assert error["cost_credits"] == 400
    assert "400 credits" in error["message"]
    assert error["fields"] == {}
    assert not Generation.objects.exists()
    assert numbers(user) == (1000, 0)


def test_a_used_quote_is_a_409_quote_expired(api, valid_body):
    quoted = quote(api, valid_body)
    body = {**valid_body, "quote_id": quoted["quote_id"]}
    assert api.post(GENERATIONS, body, format="json").status_code == 201
    again = api.post(GENERATIONS, body, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "quote_expired"


@pytest.mark.parametrize("change", [{"duration": "4s"}, {"generate_audio": False}])
def test_a_quote_of_other_options_is_a_409_quote_mismatch(api, user, valid_body, change):
    quoted = quote(api, valid_body)
    response = api.post(
        GENERATIONS, {**valid_body, **change, "quote_id": quoted["quote_id"]}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "quote_mismatch"
    assert (
        response.json()["error"]["cost_credits"]
        == quote(api, {**valid_body, **change})["cost_credits"]
    )
    assert numbers(user) == (1000, 0)


def test_another_users_quote_answers_like_an_unknown_id(api, other_user, bearer_client, valid_body):
    theirs = quote(bearer_client(other_user), valid_body)
    stolen = api.post(GENERATIONS, {**valid_body, "quote_id": theirs["quote_id"]}, format="json")
    unknown = api.post(GENERATIONS, {**valid_body, "quote_id": str(uuid.uuid4())}, format="json")
    assert stolen.status_code == unknown.status_code == 409
    assert stolen.json() == unknown.json()
    assert stolen.json()["error"]["code"] == "quote_mismatch"
    # Their quote is untouched: they can still use it.
    mine = bearer_client(other_user).post(
        GENERATIONS, {**valid_body, "quote_id": theirs["quote_id"]}, format="json"
    )
    assert mine.status_code == 201


def test_a_malformed_quote_id_is_a_400_on_the_field(api, valid_body):
    response = api.post(GENERATIONS, {**valid_body, "quote_id": "yesterday"}, format="json")
    assert response.status_code == 400
    assert "quote_id" in response.json()["error"]["fields"]


def test_an_empty_quote_id_in_a_form_is_no_quote(api, valid_body):
    form = {**valid_body, "generate_audio": "true", "quote_id": "", "max_cost_credits": ""}
    response = api.post(GENERATIONS, form, format="multipart")
    assert response.status_code == 201, response.json()


def test_max_cost_below_the_price_now_is_a_409_price_changed(api, user, valid_body):
    reprice(50)
    response = api.post(GENERATIONS, {**valid_body, "max_cost_credits": 320}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "price_changed"
    assert error["cost_credits"] == 400
    assert "400 credits" in error["message"] and "320" in error["message"]
    assert numbers(user) == (1000, 0)
    ok = api.post(GENERATIONS, {**valid_body, "max_cost_credits": 400}, format="json")
    assert ok.status_code == 201 and ok.json()["cost_credits"] == 400


def test_quote_and_max_cost_together_are_a_400(api, valid_body):
    quoted = quote(api, valid_body)
    response = api.post(
        GENERATIONS,
        {**valid_body, "quote_id": quoted["quote_id"], "max_cost_credits": 999},
        format="json",
    )
    assert response.status_code == 400
    assert "max_cost_credits" in response.json()["error"]["fields"]


def test_an_idempotent_replay_answers_the_first_response(api, user, valid_body):
    quoted = quote(api, valid_body)
    body = {**valid_body, "quote_id": quoted["quote_id"]}
    first = api.post(GENERATIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="q-1")
    reprice(70)
    again = api.post(GENERATIONS, body, format="json", HTTP_IDEMPOTENCY_KEY="q-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["cost_credits"] == 320
    assert numbers(user) == (1000, 320)


def _request_schema(document: dict, path: str) -> dict:
    ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]


def test_the_schema_documents_quotes(client):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    schemas = document["components"]["schemas"]
    create_fields = _request_schema(document, GENERATIONS)["properties"]
    assert {"quote_id", "max_cost_credits"} <= set(create_fields)
    assert "quote_id" not in _request_schema(document, QUOTE)["properties"]
    assert {"quote_id", "expires_at", "price_breakdown"} <= set(schemas["Quote"]["properties"])
    assert "price_breakdown" in schemas["Generation"]["properties"]
    generation_quote = schemas["Generation"]["properties"]["quote_id"]
    assert generation_quote["format"] == "uuid" and generation_quote["nullable"] is True
    assert generation_quote["readOnly"] is True
    conflict = document["paths"][GENERATIONS]["post"]["responses"]["409"]
    examples = conflict["content"]["application/json"]["examples"]
    assert {"quote_expired", "quote_mismatch", "price_changed"} <= {
        example["value"]["error"]["code"] for example in examples.values()
    }


def test_a_quote_binds_its_own_model_only(api, user, valid_body):
    fast = "fal-ai/veo3.1/fast/image-to-video"
    pricing.ensure_default_rules(fast)
    quoted = quote(api, {**valid_body, "model": fast})
    assert quoted["price_breakdown"][0]["value"] == fast

    other = api.post(GENERATIONS, {**valid_body, "quote_id": quoted["quote_id"]}, format="json")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "quote_mismatch"

    PricingRule.objects.filter(endpoint=fast, active=True).update(credits_per_second=99)
    same = api.post(
        GENERATIONS, {**valid_body, "model": fast, "quote_id": quoted["quote_id"]}, format="json"
    )
    assert same.status_code == 201, same.json()
    assert same.json()["model"] == fast
    assert same.json()["cost_credits"] == quoted["cost_credits"]
