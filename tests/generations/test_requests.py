"""The one definition of a generation request (generations/requests.py): the same fields,
defaults, allowed values and rules through the API's create and quote, the portal's form
and services.accept."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import tokens
from generations.forms import GenerationForm
from generations.models import BlockedTerm, Generation, PricingRule
from generations.requests import DEFAULTS, ENUMS, choices, validate_params
from tests.factories import UserFactory, image_upload
from veoproject.exceptions import ValidationFailed
from veoproject.public_urls import NOT_PUBLIC

pytestmark = pytest.mark.django_db

GENERATIONS = "/api/v1/generations/"
QUOTE = "/api/v1/generations/quote/"
BODY = {
    "prompt": "A slow dolly shot across a misty lake at dawn",
    "image_url": "https://images.example.com/lake.jpg",
}
FORM = {
    "prompt": "A paper boat drifting down a rainy street, soft light",
    "image_url": "https://images.example.com/boat.jpg",
    "aspect_ratio": "16:9",
    "duration": "8s",
    "resolution": "720p",
    "generate_audio": "on",
}
# Fingerprints the code before the one definition gave these requests: Idempotency-Keys
# stored with them must still match the same requests.
FINGERPRINT_OF_BODY = "c0f94a0a7a11e0f4fa639dd3df2b0bd55fffc53fbfee643aac1c0ef30172e1d7"
FINGERPRINT_OF_FORM = "8882bb99ac269db22ff7426e693623bde12325fa7e030b1d8c136bb39f1b8cce"
FINGERPRINT_OF_OPTIONS = "75d760060e3e0328bcab8cafdb1a70a6a17bc4c181e5dd99eb3fc5efb816747f"


@pytest.fixture(autouse=True)
def _no_limits(settings):
    settings.API_CREATE_RATE = None
    settings.API_READ_RATE = None
    settings.MAX_IN_FLIGHT_PER_USER = 0


@pytest.fixture
def rich_user():
    return UserFactory(credits=100_000)


@pytest.fixture
def api(rich_user) -> APIClient:
    _, raw = tokens.create_token(user=rich_user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def portal(rich_user) -> Client:
    client = Client()
    client.force_login(rich_user)
    return client


def png(width: int = 1280, height: int = 720) -> SimpleUploadedFile:
    return image_upload((width, height), fmt="PNG", name="frame.png", content_type="image/png")


def fingerprint(response) -> str:
    assert response.status_code in (201, 302), response.content
    return Generation.objects.order_by("-created_at").first().request_fingerprint


# --- Defaults ---------------------------------------------------------------------------------


def test_an_absent_option_takes_the_one_default_everywhere(api):
    created = api.post(GENERATIONS, BODY, format="json").json()
    assert {name: created[name] for name in DEFAULTS} == DEFAULTS
    breakdown = api.post(QUOTE, {}, format="json").json()["breakdown"]
    assert f"{breakdown['seconds']}s" == DEFAULTS["duration"]
    assert breakdown["resolution"] == DEFAULTS["resolution"]
    assert breakdown["generate_audio"] is DEFAULTS["generate_audio"]
    checked = validate_params(params=BODY)
    assert {name: getattr(checked, name) for name in DEFAULTS} == DEFAULTS
    form = GenerationForm()
    assert {name: form[name].initial for name in DEFAULTS} == DEFAULTS


def test_the_schema_documents_the_defaults(portal):
    schema = portal.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for component in ("GenerationCreateRequest", "QuoteRequestRequest"):
        properties = schema["components"]["schemas"][component]["properties"]
        assert {name: properties[name]["default"] for name in DEFAULTS} == DEFAULTS


def test_defaults_sent_or_left_out_are_the_same_request(api):
    """Left out in JSON, sent explicitly, or sent empty by a form: one fingerprint, the one
    stored Idempotency-Keys were matched with before."""
    left_out = fingerprint(api.post(GENERATIONS, BODY, format="json"))
    explicit = fingerprint(api.post(GENERATIONS, {**BODY, **DEFAULTS}, format="json"))
    empty = {"aspect_ratio": "", "duration": "", "resolution": "", "generate_audio": ""}
    from_a_form = fingerprint(api.post(GENERATIONS, {**BODY, **empty}, format="multipart"))
    assert left_out == explicit == from_a_form == FINGERPRINT_OF_BODY


def test_fingerprints_are_unchanged_for_options_urls_and_images(api, portal):
    options = {
        "prompt": "  Waves, at dusk \n",
        "image_url": " https://images.example.com/a.jpg ",
        "aspect_ratio": "9:16",
        "duration": "4s",
        "resolution": "1080p",
        "generate_audio": False,
        "callback_url": " https://hooks.example.com/cb ",
    }
    assert fingerprint(api.post(GENERATIONS, options, format="json")) == FINGERPRINT_OF_OPTIONS
    trimmed = {**options, "image_url": options["image_url"].strip()}
    trimmed["callback_url"] = options["callback_url"].strip()
    checked = validate_params(params=trimmed)
    assert checked.fingerprint() == FINGERPRINT_OF_OPTIONS
    assert checked.fingerprint("abc123") == (
        "7f17d1039d2d7b74fb358de7f8fe5becbb47d88df1f76e48c8ee652618e1a94d"
    )
    # The portal's form and the API send the same request: the same fingerprint.
    assert fingerprint(portal.post(reverse("studio"), FORM)) == FINGERPRINT_OF_FORM
    api_body = {**FORM, "generate_audio": True}
    assert fingerprint(api.post(GENERATIONS, api_body, format="json")) == FINGERPRINT_OF_FORM


# --- Allowed values -----------------------------------------------------------------------------


def test_the_schema_and_the_portal_form_offer_the_enums(portal):
    schemas = portal.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"][
        "schemas"
    ]
    for enum in ENUMS.values():
        assert schemas[f"{enum.__name__}Enum"]["enum"] == enum.values
    form = GenerationForm()
    for name in ("aspect_ratio", "duration", "resolution"):
        assert list(form.fields[name].choices) == choices(name)


def test_only_resolutions_with_an_active_price_are_offered_and_accepted(api, portal):
    PricingRule.objects.filter(resolution="1080p").update(active=False)
    PricingRule.objects.filter(resolution="4k").update(active=True)
    assert [value for value, _ in choices("resolution")] == ["720p", "4k"]

    refused = ["Choose a resolution: 720p, 4k."]
    create = api.post(GENERATIONS, {**BODY, "resolution": "1080p"}, format="json")
    assert create.json()["error"]["fields"]["resolution"] == refused
    quote = api.post(QUOTE, {"resolution": "1080p"}, format="json")
    assert quote.json()["error"]["fields"]["resolution"] == refused
    with pytest.raises(ValidationFailed) as service:
        validate_params(params={**BODY, "resolution": "1080p"})
    assert service.value.fields["resolution"] == refused
    page = portal.get(reverse("studio")).content.decode()
    assert 'value="4k"' in page and 'value="1080p"' not in page

    accepted = api.post(GENERATIONS, {**BODY, "resolution": "4k"}, format="json")
    assert accepted.status_code == 201
    assert accepted.json()["cost_credits"] == 60 * 8


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"duration": "9s"}, "duration", "Choose a duration: 4s, 6s, 8s."),
        ({"duration": 8}, "duration", "Choose a duration: 4s, 6s, 8s."),
        ({"aspect_ratio": "1:1"}, "aspect_ratio", "Choose a aspect ratio: auto, 16:9, 9:16."),
        ({"resolution": "4k"}, "resolution", "Choose a resolution: 720p, 1080p."),
        ({"generate_audio": "maybe"}, "generate_audio", "Must be a valid boolean."),
    ],
)
def test_create_and_quote_refuse_an_option_with_the_same_message(api, change, field, message):
    create = api.post(GENERATIONS, {**BODY, **change}, format="json").json()["error"]
    quote = api.post(QUOTE, change, format="json").json()["error"]
    assert create["code"] == quote["code"] == "invalid"
    assert create["fields"][field] == quote["fields"][field] == [message]


def test_the_quote_reads_only_the_options(api):
    ignored = {"prompt": None, "image_url": ["not", "a", "url"], "image": "not a file"}
    response = api.post(QUOTE, {**ignored, "duration": "4s"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["cost_credits"] == 40 * 4


# --- Rules across fields ------------------------------------------------------------------------


def test_an_image_and_an_image_url_together_are_refused(api):
    response = api.post(GENERATIONS, {**BODY, "image": png()}, format="multipart")
    assert response.json()["error"]["fields"] == {
        "image_url": ["Send either an image file or an image URL, not both."]
    }
    with pytest.raises(ValidationFailed) as service:
        validate_params(params=BODY, image_file=png())
    assert service.value.fields == response.json()["error"]["fields"]


@pytest.mark.parametrize("image_url", [None, "", "   "])
def test_a_request_without_an_image_is_refused(api, image_url):
    body = {"prompt": BODY["prompt"]}
    if image_url is not None:
        body["image_url"] = image_url
    response = api.post(GENERATIONS, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "image": ["Upload an image or give an image URL."]
    }
    assert not Generation.objects.exists()


def test_every_error_comes_in_one_answer_with_the_rules_across_fields(api):
    response = api.post(
        GENERATIONS,
        {"prompt": ["a", "list"], "duration": "9s", "callback_url": "ftp://example.com/cb"},
        format="json",
    )
    fields = response.json()["error"]["fields"]
    assert fields == {
        "prompt": ["Not a valid string."],
        "duration": ["Choose a duration: 4s, 6s, 8s."],
        "callback_url": ["Enter a valid http or https URL."],
        "image": ["Upload an image or give an image URL."],
    }
    missing = api.post(GENERATIONS, {"aspect_ratio": "1:1"}, format="json").json()["error"]
    assert set(missing["fields"]) == {"aspect_ratio", "prompt", "image"}
    assert missing["fields"]["prompt"] == ["Describe the video you want."]


def test_an_uploaded_image_alone_is_the_image(api):
    response = api.post(
        GENERATIONS, {"prompt": BODY["prompt"], "image": png(), "image_url": ""}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    generation = Generation.objects.get(pk=response.json()["id"])
    assert generation.image and generation.image_url == ""


# --- The same rules through the API and the portal ----------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"prompt": "   "}, "prompt", "Describe the video you want."),
        ({"prompt": "A bell\x07 rings"}, "prompt", "The prompt contains control characters."),
        ({"image_url": "https://localhost/x.jpg"}, "image_url", NOT_PUBLIC),
        ({"image_url": "http://images.example.com/x.jpg"}, "image_url", "Enter a valid https URL."),
    ],
)
def test_the_api_and_the_portal_refuse_with_the_same_message(api, portal, change, field, message):
    through_api = api.post(GENERATIONS, {**BODY, **change}, format="json").json()["error"]
    through_portal = portal.post(reverse("studio"), {**FORM, **change}).context["form"].errors
    assert through_api["fields"][field] == through_portal[field] == [message]
    assert not Generation.objects.exists()


def test_a_small_image_is_refused_with_the_same_message_through_api_and_portal(api, portal):
    through_api = api.post(
        GENERATIONS, {"prompt": BODY["prompt"], "image": png(640, 360)}, format="multipart"
    ).json()["error"]["fields"]["image"]
    through_portal = (
        portal.post(reverse("studio"), {**FORM, "image_url": "", "image": png(640, 360)})
        .context["form"]
        .errors["image"]
    )
    assert through_api == through_portal
    assert "Veo needs at least 720p" in through_api[0]


def test_a_blocked_term_is_refused_the_same_way_through_api_and_portal(api, portal):
    BlockedTerm.objects.create(term="forbidden thing")
    change = {"prompt": "A FORBIDDEN thing at dawn"}
    through_api = api.post(GENERATIONS, {**BODY, **change}, format="json").json()["error"]
    through_portal = portal.post(reverse("studio"), {**FORM, **change}).context["form"].errors
    assert through_api["code"] == "blocked_term"
    assert through_api["fields"]["prompt"] == through_portal["prompt"]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("A bell\x7f rings", "The prompt contains control characters."),
        ("A bell\x85 rings", "The prompt contains control characters."),  # C1: NEL
        # DRF's own CharField refuses these first, in its words.
        ("A bell\x00 rings", "Null characters are not allowed."),
        ("A bell\ud800 rings", "Surrogate characters are not allowed: U+D800."),
        ("A bell \udfff", "Surrogate characters are not allowed: U+DFFF."),
    ],
)
def test_control_characters_and_lone_surrogates_are_refused(api, prompt, message):
    body = json.dumps({**BODY, "prompt": prompt})  # a lone surrogate as JSON's \\ud800
    response = api.post(GENERATIONS, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["prompt"] == [message]
    assert not Generation.objects.exists()


def test_tabs_and_line_breaks_and_other_scripts_are_a_prompt(api):
    prompt = "Line one\r\nLine two\tand \u00e9\u4e2d\u6587 \U0001f30a\u200d"
    response = api.post(GENERATIONS, {**BODY, "prompt": prompt}, format="json")
    assert response.status_code == 201, response.json()
    assert Generation.objects.get().prompt == prompt
