"""The studio's model picker: the offered models, the chosen model's fields (an htmx
partial: its image slots, its options out of band), the price box following the model,
and a create of each kind of model from the form."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generations import catalogue
from generations.models import Generation, PricingRule
from tests.portal.conftest import FORM, jpeg_upload

pytestmark = pytest.mark.django_db

FLF = "fal-ai/veo3.1/first-last-frame-to-video"
REF = "fal-ai/veo3.1/reference-to-video"
T2V = "fal-ai/veo3.1"


def test_the_studio_offers_the_priced_models_with_the_default_chosen(logged_in):
    PricingRule.objects.filter(endpoint=REF).update(active=False)
    page = logged_in.get(reverse("studio")).content.decode()
    assert 'data-testid="model-picker"' in page
    for model in catalogue.MODELS.values():
        assert (f'value="{model.id}"' in page) is (model.id != REF)
    assert f'<option value="{catalogue.DEFAULT_MODEL}" selected>' in page
    assert 'name="image"' in page  # the default model's one image


def test_picking_a_model_swaps_in_its_image_slots_and_options(logged_in):
    response = logged_in.get(reverse("studio-model-fields"), {"model": FLF})
    assert response.status_code == 200
    assert response["HX-Trigger-After-Settle"] == "model-changed"  # the price box follows
    page = response.content.decode()
    assert 'data-testid="frame-slots"' in page
    for name in ("first_frame", "first_frame_url", "last_frame", "last_frame_url"):
        assert f'name="{name}"' in page
    assert 'name="image"' not in page
    assert '<div id="model-options" hx-swap-oob="true">' in page
    assert 'value="auto"' in page and 'name="negative_prompt"' in page
    # The 4k price of this model is unknown: no 4k to choose.
    assert 'name="resolution" value="4k"' not in page

    references = logged_in.get(reverse("studio-model-fields"), {"model": REF}).content.decode()
    assert 'data-testid="reference-slots"' in references and "multiple" in references
    assert 'name="negative_prompt"' not in references and 'name="seed"' not in references
    assert 'value="4s"' not in references  # 8 s only

    text = logged_in.get(reverse("studio-model-fields"), {"model": T2V}).content.decode()
    assert 'type="file"' not in text and 'value="auto"' not in text


def test_an_unknown_model_in_the_partial_falls_back_to_the_default(logged_in):
    page = logged_in.get(reverse("studio-model-fields"), {"model": "nope"}).content.decode()
    assert 'name="image"' in page


def test_the_price_box_follows_the_model(logged_in):
    url = reverse("quote-preview")
    options = {"duration": "8s", "resolution": "720p", "generate_audio": "on"}
    assert logged_in.get(url, options).context["quote"].credits == 320
    fast = logged_in.get(url, {**options, "model": "fal-ai/veo3.1/fast"})
    assert fast.context["quote"].credits == 15 * 8
    assert fast.context["quote"].endpoint == "fal-ai/veo3.1/fast"


def test_a_first_and_last_frame_video_is_created_from_the_form(logged_in, user):
    response = logged_in.post(
        reverse("studio"),
        {
            **{k: v for k, v in FORM.items() if k != "image_url"},
            "model": FLF,
            "aspect_ratio": "auto",
            "first_frame": jpeg_upload(name="first.jpg"),
            "last_frame_url": "https://images.example.com/last.jpg",
            "negative_prompt": "people",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    generation = Generation.objects.get(owner=user)
    assert (generation.model, generation.aspect_ratio) == (FLF, "auto")
    assert generation.model_options == {"negative_prompt": "people"}
    assert sorted(generation.input_images.values_list("slot", flat=True)) == [
        "first_frame_url",
        "last_frame_url",
    ]


def test_a_missing_frame_is_a_form_error_and_nothing_is_held(logged_in, user):
    response = logged_in.post(
        reverse("studio"),
        {
            **{k: v for k, v in FORM.items() if k != "image_url"},
            "model": FLF,
            "aspect_ratio": "auto",
            "first_frame_url": "https://images.example.com/first.jpg",
        },
    )
    assert response.status_code == 200
    assert response.context["form"].errors["last_frame"] == [
        "Upload the last frame or give its URL."
    ]
    assert not Generation.objects.exists()


def test_reference_urls_one_a_line_and_a_text_video(logged_in, user):
    response = logged_in.post(
        reverse("studio"),
        {
            **{k: v for k, v in FORM.items() if k != "image_url"},
            "model": REF,
            "image_urls": "https://images.example.com/a.jpg\n\nhttps://images.example.com/b.jpg\n",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    generation = Generation.objects.get(owner=user)
    assert list(generation.input_images.values_list("image_url", flat=True)) == [
        "https://images.example.com/a.jpg",
        "https://images.example.com/b.jpg",
    ]
    text = logged_in.post(
        reverse("studio"),
        {**{k: v for k, v in FORM.items() if k != "image_url"}, "model": T2V},
    )
    assert text.status_code == 302, text.context["form"].errors
    assert Generation.objects.filter(owner=user, model=T2V).exists()


def test_make_another_like_this_keeps_the_model_its_options_and_image_urls(logged_in, user):
    first = logged_in.post(
        reverse("studio"),
        {
            **{k: v for k, v in FORM.items() if k != "image_url"},
            "model": FLF,
            "aspect_ratio": "9:16",
            "first_frame_url": "https://images.example.com/first.jpg",
            "last_frame_url": "https://images.example.com/last.jpg",
            "seed": "7",
        },
    )
    assert first.status_code == 302, first.context["form"].errors
    source = Generation.objects.get(owner=user)
    form = logged_in.get(reverse("studio"), {"from": str(source.pk)}).context["form"]
    assert form.model_entry.id == FLF
    assert form["aspect_ratio"].value() == "9:16" and form["seed"].value() == 7
    assert form["first_frame_url"].value() == "https://images.example.com/first.jpg"
    assert form["last_frame_url"].value() == "https://images.example.com/last.jpg"
