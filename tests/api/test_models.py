"""`GET /api/v1/models/` and the `model` of a create and a quote: the offered models with
their options, defaults and prices; today's clients unchanged; the schema documents it."""

from __future__ import annotations

import pytest
from django.test import Client

from generations import catalogue
from generations.models import Generation, PricingRule

pytestmark = pytest.mark.django_db

MODELS = "/api/v1/models/"
GENERATIONS = "/api/v1/generations/"
QUOTE = "/api/v1/generations/quote/"
FLF = "fal-ai/veo3.1/fast/first-last-frame-to-video"
REF = "fal-ai/veo3.1/reference-to-video"
BODY = {"prompt": "A lighthouse at dusk", "image_url": "https://images.example.com/l.jpg"}


@pytest.fixture(autouse=True)
def _no_limits(settings):
    settings.API_CREATE_RATE = None
    settings.MAX_IN_FLIGHT_PER_USER = 0


def test_the_models_list_shows_each_offered_model_with_options_defaults_and_prices(api):
    response = api.get(MODELS)
    assert response.status_code == 200
    models = {entry["id"]: entry for entry in response.json()}
    assert list(models) == list(catalogue.IDS)

    flf = models[FLF]
    assert flf["images"] == {
        "kind": "first_last",
        "field_names": ["first_frame_url", "last_frame_url"],
        "max_references": None,
    }
    assert flf["options"]["aspect_ratio"] == {"values": ["auto", "16:9", "9:16"], "default": "auto"}
    assert flf["options"]["resolution"] == {"values": ["720p", "1080p"], "default": "720p"}
    assert flf["optional_arguments"]["negative_prompt"] is True
    assert {"resolution": "1080p", "generate_audio": True, "credits_per_second": 15} in flf[
        "prices"
    ]
    assert flf["source_url"].startswith("https://fal.ai/")

    ref = models[REF]
    assert ref["images"]["field_names"] == ["image_urls"] and ref["images"]["max_references"] == 3
    assert ref["options"]["duration"] == {"values": ["8s"], "default": "8s"}
    assert ref["optional_arguments"]["seed"] is False


def test_a_model_whose_prices_staff_switched_off_leaves_the_list(api):
    PricingRule.objects.filter(endpoint=REF).update(active=False)
    assert REF not in [entry["id"] for entry in api.get(MODELS).json()]
    refused = api.post(QUOTE, {"model": REF}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"]["model"][0].startswith("Choose a model: ")


def test_the_models_list_needs_credentials(client):
    assert Client().get(MODELS).status_code in (401, 403)


def test_create_and_quote_with_a_model_charge_its_own_price(api):
    body = {
        "model": FLF,
        "prompt": "The lake freezes over",
        "first_frame_url": "https://images.example.com/dawn.jpg",
        "last_frame_url": "https://images.example.com/night.jpg",
        "duration": "4s",
    }
    quote = api.post(QUOTE, body, format="json")
    assert quote.status_code == 200, quote.content
    assert quote.json()["cost_credits"] == 15 * 4
    created = api.post(GENERATIONS, body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["model"], data["cost_credits"], data["aspect_ratio"]) == (FLF, 60, "auto")
    assert data["image_url"] is None
    assert data["input_images"] == [
        {"field": "first_frame_url", "position": 0, "url": body["first_frame_url"]},
        {"field": "last_frame_url", "position": 0, "url": body["last_frame_url"]},
    ]


def test_a_multipart_create_takes_several_reference_uploads(api):
    from tests.factories import image_upload

    response = api.post(
        GENERATIONS,
        {
            "model": REF,
            "prompt": "A cat in a hat",
            "reference_images": [image_upload(name="a.jpg"), image_upload(name="b.jpg")],
            "image_urls": "https://images.example.com/hat.jpg",
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    generation = Generation.objects.get(pk=response.json()["id"])
    rows = list(generation.input_images.values_list("slot", "position", "image_url"))
    assert [(slot, position) for slot, position, _ in rows] == [
        ("image_urls", 0),
        ("image_urls", 1),
        ("image_urls", 2),
    ]
    assert rows[2][2] == "https://images.example.com/hat.jpg"
    assert all(image.image for image in generation.input_images.all()[:2])


def test_a_create_with_a_models_wrong_value_is_refused_naming_its_values(api):
    response = api.post(
        GENERATIONS,
        {"model": REF, "prompt": "x", "image_urls": ["https://a.example/1.png"], "duration": "6s"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"duration": ["Choose a duration: 8s."]}


def test_todays_clients_are_unchanged(api):
    quote = api.post(QUOTE, {}, format="json").json()
    assert quote["cost_credits"] == 320
    assert quote["breakdown"]["endpoint"] == catalogue.DEFAULT_MODEL
    created = api.post(GENERATIONS, BODY, format="json").json()
    assert created["model"] == catalogue.DEFAULT_MODEL
    assert (created["aspect_ratio"], created["duration"], created["cost_credits"]) == (
        "16:9",
        "8s",
        320,
    )
    assert created["image_url"] == BODY["image_url"] and created["input_images"] == []


def test_the_schema_documents_the_models_and_the_model_field(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/models/" in schema["paths"]
    listing = schema["paths"]["/api/v1/models/"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"]["items"]["$ref"].endswith(
        "/CatalogueModel"
    )
    components = schema["components"]["schemas"]
    create = components["GenerationCreateRequest"]["properties"]
    enum = components[create["model"]["allOf"][0]["$ref"].rsplit("/", 1)[1]]["enum"]
    assert set(enum) == set(catalogue.IDS)
    assert create["model"]["default"] == catalogue.DEFAULT_MODEL
    for name in ("first_frame_url", "last_frame_url", "image_urls", "negative_prompt", "seed"):
        assert name in create
    assert "model" in components["Generation"]["properties"]
