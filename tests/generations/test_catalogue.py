"""The catalogue: what each model accepts is checked per model, errors name that model's
values, a model without an active price is not offered, each gets its own defaults, and
accept stores and the submit sends each model's own arguments."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generations import catalogue, services
from generations.models import Generation, GenerationImage, PricingRule
from generations.requests import (
    choices,
    defaults,
    offered_models,
    quote_request,
    validate_params,
    validate_request,
)
from generations.simulated import SimulatedGateway
from tests.factories import image_upload
from veoproject.exceptions import ValidationFailed

pytestmark = pytest.mark.django_db

PROMPT = "A paper boat drifting down a rainy street"
T2V = "fal-ai/veo3.1"
FLF = "fal-ai/veo3.1/fast/first-last-frame-to-video"
REF = "fal-ai/veo3.1/reference-to-video"
I2V = catalogue.DEFAULT_MODEL


def refused(params: dict, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        validate_request(params=params, **kwargs)
    return caught.value.fields


def png() -> SimpleUploadedFile:
    return image_upload()


def test_the_catalogue_has_the_seven_veo_models_with_their_sources():
    assert set(catalogue.IDS) == {
        "fal-ai/veo3.1/image-to-video",
        "fal-ai/veo3.1",
        "fal-ai/veo3.1/fast",
        "fal-ai/veo3.1/fast/image-to-video",
        "fal-ai/veo3.1/first-last-frame-to-video",
        "fal-ai/veo3.1/fast/first-last-frame-to-video",
        "fal-ai/veo3.1/reference-to-video",
    }
    for model in catalogue.MODELS.values():
        assert model.source_url.startswith("https://")
        assert model.defaults["duration"] in model.durations


def test_every_seeded_model_is_offered_at_fals_list_price():
    assert [model.id for model in offered_models()] == list(catalogue.IDS)
    for model in catalogue.MODELS.values():
        for (resolution, audio), usd in model.usd_per_second.items():
            rule = PricingRule.objects.get(
                endpoint=model.id, resolution=resolution, generate_audio=audio
            )
            assert rule.credits_per_second == usd * 100
            assert rule.active is (resolution != "4k")  # 4k waits for staff, as before


def test_a_model_without_an_active_price_is_not_offered_nor_accepted():
    PricingRule.objects.filter(endpoint=REF).update(active=False)

    assert REF not in [model.id for model in offered_models()]
    fields = refused({"model": REF, "prompt": PROMPT, "image_urls": ["https://a.example/1.png"]})
    assert fields["model"] == [
        f"Choose a model: {', '.join(m for m in catalogue.IDS if m != REF)}."
    ]
    assert set(fields) == {"model"}  # no noise about the options of a model one cannot order


def test_an_unknown_model_names_the_models_on_offer():
    fields = refused({"model": "fal-ai/veo3.1/lite", "prompt": PROMPT})
    assert fields["model"] == [f"Choose a model: {', '.join(catalogue.IDS)}."]


@pytest.mark.parametrize(
    ("model", "option", "value", "message"),
    [
        (T2V, "aspect_ratio", "auto", "Choose a aspect ratio: 16:9, 9:16."),
        (FLF, "aspect_ratio", "1:1", "Choose a aspect ratio: auto, 16:9, 9:16."),
        (REF, "duration", "4s", "Choose a duration: 8s."),
        (REF, "aspect_ratio", "auto", "Choose a aspect ratio: 16:9, 9:16."),
        (T2V, "resolution", "4k", "Choose a resolution: 720p, 1080p."),
    ],
)
def test_an_option_is_checked_against_the_models_own_values(model, option, value, message):
    images = {
        T2V: {},
        FLF: {
            "first_frame_url": "https://a.example/1.png",
            "last_frame_url": "https://a.example/2.png",
        },
        REF: {"image_urls": ["https://a.example/1.png"]},
    }[model]
    fields = refused({"model": model, "prompt": PROMPT, **images, option: value})
    assert fields == {option: [message]}


def test_4k_is_offered_for_a_model_once_staff_switch_its_price_on():
    assert [v for v, _ in choices("resolution", model=FLF)] == ["720p", "1080p"]
    PricingRule.objects.filter(endpoint=FLF, resolution="4k").update(active=True)
    assert [v for v, _ in choices("resolution", model=FLF)] == ["720p", "1080p", "4k"]
    # first-last-frame-to-video (not fast) has no known 4k price: none was seeded.
    assert not PricingRule.objects.filter(
        endpoint="fal-ai/veo3.1/first-last-frame-to-video", resolution="4k"
    ).exists()


@pytest.mark.parametrize("model_id", catalogue.IDS)
def test_an_absent_option_takes_the_models_own_default(model_id):
    model = catalogue.get(model_id)
    images = {
        "none": {},
        "image": {"image_url": "https://a.example/1.png"},
        "first_last": {
            "first_frame_url": "https://a.example/1.png",
            "last_frame_url": "https://a.example/2.png",
        },
        "references": {"image_urls": ["https://a.example/1.png"]},
    }[model.images]
    checked = validate_params(params={"model": model_id, "prompt": PROMPT, **images})
    assert checked.model == model_id
    assert (
        {
            "aspect_ratio": checked.aspect_ratio,
            "duration": checked.duration,
            "resolution": checked.resolution,
            "generate_audio": checked.generate_audio,
        }
        == defaults(model_id)
        == dict(model.defaults)
    )
    assert checked.model_options == {}  # absent optional arguments are fal's to default


def test_the_default_model_and_its_fingerprint_are_unchanged_for_todays_clients():
    body = {"prompt": PROMPT, "image_url": "https://a.example/1.png"}
    checked = validate_params(params=body)
    assert checked.model == I2V
    assert checked.aspect_ratio == "16:9"  # ours, kept from before the catalogue
    named = validate_params(params={**body, "model": I2V})
    assert checked.fingerprint() == named.fingerprint()
    other = validate_params(params={**body, "model": "fal-ai/veo3.1/fast/image-to-video"})
    assert other.fingerprint() != checked.fingerprint()


@pytest.mark.parametrize(
    ("model", "body", "field", "message"),
    [
        (T2V, {"image_url": "https://a.example/1.png"}, "image_url", f"{T2V} takes no image."),
        (I2V, {}, "image", "Upload an image or give an image URL."),
        (
            FLF,
            {"first_frame_url": "https://a.example/1.png"},
            "last_frame",
            "Upload the last frame or give its URL.",
        ),
        (
            FLF,
            {
                "image_urls": ["https://a.example/1.png"],
                "first_frame_url": "https://a.example/1.png",
                "last_frame_url": "https://a.example/2.png",
            },
            "image_urls",
            f"{FLF} takes no reference images.",
        ),
        (
            REF,
            {},
            "image_urls",
            "Give 1 to 3 reference images (uploads and URLs); this request has 0.",
        ),
        (
            REF,
            {"image_urls": [f"https://a.example/{i}.png" for i in range(4)]},
            "image_urls",
            "Give 1 to 3 reference images (uploads and URLs); this request has 4.",
        ),
        (
            REF,
            {"image_urls": ["https://a.example/1.png"], "negative_prompt": "rain"},
            "negative_prompt",
            f"{REF} takes no negative prompt.",
        ),
        (
            REF,
            {"image_urls": ["https://a.example/1.png"], "seed": 7},
            "seed",
            f"{REF} takes no seed.",
        ),
        (
            T2V,
            {"safety_tolerance": "9"},
            "safety_tolerance",
            "Choose a safety tolerance: 1, 2, 3, 4, 5, 6.",
        ),
        (T2V, {"seed": -1}, "seed", "Ensure this value is greater than or equal to 0."),
    ],
)
def test_what_a_model_takes_is_checked_per_model(model, body, field, message):
    fields = refused({"model": model, "prompt": PROMPT, **body})
    assert message in fields[field]


def test_a_reference_url_is_held_to_the_public_https_rule():
    fields = refused({"model": REF, "prompt": PROMPT, "image_urls": ["http://127.0.0.1/x.png"]})
    assert "image_urls" in fields


def test_the_optional_arguments_given_are_kept_and_only_those():
    checked = validate_params(
        params={
            "model": T2V,
            "prompt": PROMPT,
            "negative_prompt": "rain",
            "seed": 7,
            "auto_fix": False,
        }
    )
    assert checked.model_options == {"negative_prompt": "rain", "seed": 7, "auto_fix": False}


def test_a_quote_prices_the_named_model():
    assert quote_request(params={"model": "fal-ai/veo3.1/fast", "duration": "4s"}).credits == 60
    assert quote_request(params={"duration": "4s"}).credits == 160
    fast = quote_request(params={"model": "fal-ai/veo3.1/fast", "duration": "4s"})
    assert fast.endpoint == "fal-ai/veo3.1/fast"


def test_accept_stores_the_frames_and_the_submit_sends_each_to_its_own_field(
    user, settings, django_capture_on_commit_callbacks
):
    settings.FAL_KEY = ""
    settings.FAL_SIMULATED = True
    with django_capture_on_commit_callbacks(execute=False):
        generation = services.accept(
            user=user,
            params={
                "model": FLF,
                "prompt": PROMPT,
                "first_frame": png(),
                "last_frame_url": "https://images.example.com/night.png",
                "seed": 3,
            },
        ).generation
    assert generation.model == generation.endpoint == FLF
    assert generation.cost_credits == 15 * 8  # fast tier, 720p with audio, 8 s
    first, last = GenerationImage.objects.filter(generation=generation).order_by("slot")
    assert (first.slot, bool(first.image), first.image_url) == ("first_frame_url", True, "")
    assert (last.slot, last.image_url) == ("last_frame_url", "https://images.example.com/night.png")

    settings.IMAGE_URL_CHECK = False
    arguments = services.fal_arguments(generation)
    assert arguments["first_frame_url"].startswith("simulated:uploads/")
    assert arguments["last_frame_url"] == "https://images.example.com/night.png"
    assert arguments["seed"] == 3 and arguments["aspect_ratio"] == "auto"
    assert "image_url" not in arguments and "negative_prompt" not in arguments


def test_accept_of_a_text_model_stores_no_image(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        generation = services.accept(user=user, params={"model": T2V, "prompt": PROMPT}).generation
    generation.refresh_from_db()
    assert (generation.image.name, generation.image_url) == ("", "")
    assert not generation.input_images.exists()


def test_the_simulated_backend_refuses_what_fal_refuses(settings):
    gateway = SimulatedGateway(endpoint=I2V)
    good = gateway.submit(arguments={"prompt": PROMPT}, endpoint=T2V)
    assert gateway.result(request_id=good.request_id).video_url
    # An image sent to a text model, and a text model's request without its image.
    for endpoint, arguments in [
        (T2V, {"prompt": PROMPT, "image_url": "https://a.example/1.png"}),
        (I2V, {"prompt": PROMPT}),
        (REF, {"prompt": PROMPT, "image_urls": ["u"], "duration": "4s"}),
    ]:
        bad = gateway.submit(arguments=arguments, endpoint=endpoint)
        with pytest.raises(Exception) as caught:
            gateway.result(request_id=bad.request_id)
        assert getattr(caught.value, "code", None) == "invalid_input"


def test_every_model_is_its_own_endpoint_and_takes_its_own_arguments():
    for model in catalogue.MODELS.values():
        images = {name: "https://a.example/1.png" for name in model.image_fields}
        if "image_urls" in images:
            images["image_urls"] = ["https://a.example/1.png"]
        arguments = model.arguments(
            prompt=PROMPT,
            images=images,
            options={"seed": 1, "negative_prompt": "x", "auto_fix": True},
            **defaults(model.id),
        )
        assert catalogue.fal_input_errors(model.id, arguments) == []
    assert Generation._meta.get_field("model").default == I2V
