"""The studio: the create form, its live price, and what a submit does to credits."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import CreditAccount, LedgerEntry
from generations.models import BlockedTerm, Generation, PricingRule
from tests.factories import GenerationFactory, UserFactory
from tests.portal.conftest import FORM, jpeg_upload

pytestmark = pytest.mark.django_db


def available(user) -> int:
    return CreditAccount.objects.get(user=user).available


def form_key(response) -> str:
    return response.context["form"]["idempotency_key"].value()


@pytest.mark.parametrize(
    "name",
    ["generation-list", "credits", "tokens", "quote-preview", "password_change"],
)
def test_pages_need_a_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")


# --- Live price -----------------------------------------------------------------------------


def test_studio_shows_the_default_price_and_what_will_be_left(logged_in):
    response = logged_in.get(reverse("studio"))
    assert response.status_code == 200
    assert response.context["quote"].credits == 320  # 8 s x 40 credits/s, 720p with audio
    page = response.content.decode()
    assert 'data-testid="price-credits">320<' in page
    assert "<strong>680</strong> will be left" in page
    assert "<title>Create a video · Veo Studio</title>" in page


def test_price_preview_follows_the_options_and_the_pricing_rules(logged_in):
    url = reverse("quote-preview")
    with_audio = logged_in.get(
        url, {"duration": "8s", "resolution": "720p", "generate_audio": "on"}
    )
    assert with_audio.context["quote"].credits == 320
    # An unchecked checkbox is absent: audio off costs half, 4 s costs half again.
    short_silent = logged_in.get(url, {"duration": "4s", "resolution": "720p"})
    assert short_silent.context["quote"].credits == 80
    assert "<strong>920</strong> will be left" in short_silent.content.decode()
    # The same pricing rules as accept: a staff change shows at once.
    PricingRule.objects.filter(resolution="720p", generate_audio=False, active=True).update(
        credits_per_second=25
    )
    assert (
        logged_in.get(url, {"duration": "4s", "resolution": "720p"}).context["quote"].credits == 100
    )


def test_price_preview_answers_json_when_asked(logged_in):
    response = logged_in.get(
        reverse("quote-preview"),
        {"duration": "6s", "resolution": "1080p", "generate_audio": "true"},
        HTTP_ACCEPT="application/json",
    )
    assert response.json() == {
        "cost_credits": 240,
        "breakdown": {
            "seconds": 6,
            "credits_per_second": 40,
            "resolution": "1080p",
            "generate_audio": True,
            "endpoint": "fal-ai/veo3.1/image-to-video",
        },
        "available": 1000,
        "remaining": 760,
        "affordable": True,
    }


def test_price_preview_of_an_unpriced_option_explains_and_disables_submit(logged_in):
    response = logged_in.get(reverse("quote-preview"), {"duration": "8s", "resolution": "4k"})
    page = response.content.decode()
    assert response.context["quote"] is None
    assert "4k is not available" in page
    assert "disabled" in page
    json_response = logged_in.get(
        reverse("quote-preview"),
        {"duration": "9s", "resolution": "720p"},
        HTTP_ACCEPT="application/json",
    )
    assert json_response.status_code == 400
    assert json_response.json()["error"]["code"] == "no_price"


def test_submit_is_disabled_with_a_clear_message_when_credits_are_short(client):
    poor = UserFactory(credits=100)
    client.force_login(poor)
    page = client.get(reverse("studio")).content.decode()
    assert "You have 100 credits available: 220 short." in page
    assert 'disabled data-disabled-by-server aria-describedby="price-short"' in page
    # Cheaper options fit: the preview enables the button again.
    cheap = client.get(reverse("quote-preview"), {"duration": "4s", "resolution": "720p"})
    assert cheap.context["affordable"] is True
    assert "disabled" not in cheap.content.decode()


# --- Create -----------------------------------------------------------------------------------


def test_create_with_an_image_url_holds_the_quoted_price_and_shows_the_gallery(logged_in, user):
    key = form_key(logged_in.get(reverse("studio")))
    response = logged_in.post(reverse("studio"), {**FORM, "idempotency_key": key}, follow=True)

    generation = Generation.objects.get(owner=user)
    assert response.redirect_chain == [(reverse("generation-list"), 302)]
    assert (generation.prompt, generation.image_url, generation.duration) == (
        FORM["prompt"],
        FORM["image_url"],
        "8s",
    )
    assert generation.generate_audio is True
    assert generation.cost_credits == 320
    assert available(user) == 680
    assert LedgerEntry.objects.get(generation=generation).kind == "hold"
    page = response.content.decode()
    assert "320 credits are held for it" in page
    assert f'id="card-{generation.pk}"' in page


def test_create_with_an_uploaded_image_stores_it(logged_in, user):
    response = logged_in.post(
        reverse("studio"),
        {**FORM, "image_url": "", "generate_audio": "", "duration": "4s", "image": jpeg_upload()},
    )
    assert response.status_code == 302
    generation = Generation.objects.get(owner=user)
    assert generation.image.name.startswith(f"private/inputs/{user.pk}/")
    assert (generation.generate_audio, generation.cost_credits) == (False, 80)


def test_the_same_form_sent_twice_makes_one_video_and_holds_once(logged_in, user):
    data = {**FORM, "idempotency_key": form_key(logged_in.get(reverse("studio")))}
    logged_in.post(reverse("studio"), data)
    again = logged_in.post(reverse("studio"), data, follow=True)
    assert Generation.objects.filter(owner=user).count() == 1
    assert available(user) == 680
    assert "That was already sent" in again.content.decode()


def test_a_spent_form_key_with_other_settings_asks_to_send_again_with_a_new_key(logged_in, user):
    key = form_key(logged_in.get(reverse("studio")))
    logged_in.post(reverse("studio"), {**FORM, "idempotency_key": key})
    response = logged_in.post(reverse("studio"), {**FORM, "duration": "4s", "idempotency_key": key})
    assert response.status_code == 200
    assert "already sent with other settings" in response.content.decode()
    new_key = form_key(response)
    assert new_key != key and new_key.startswith("portal:")
    assert (
        logged_in.post(
            reverse("studio"), {**FORM, "duration": "4s", "idempotency_key": new_key}
        ).status_code
        == 302
    )
    assert Generation.objects.filter(owner=user).count() == 2


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"prompt": "   "}, "prompt", "Describe the video you want."),
        ({"image_url": ""}, "image", "Choose an image, or give the URL of one."),
        ({"image_url": "http://127.0.0.1/x.jpg"}, "image_url", "https URL"),
        ({"image_url": "https://localhost/x.jpg"}, "image_url", "public internet address"),
        ({"duration": "9s"}, "duration", "Select a valid choice."),
        ({"resolution": "4k"}, "resolution", "Select a valid choice."),
        ({"prompt": "x" * 2501}, "prompt", "at most 2500 characters"),
        ({"prompt": "A bell\x07 rings"}, "prompt", "control characters"),
    ],
)
def test_invalid_input_comes_back_on_the_form_with_the_rest_kept(
    logged_in, user, change, field, message
):
    data = {**FORM, **change}
    response = logged_in.post(reverse("studio"), data)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(message in error for error in errors[field]), errors
    assert not Generation.objects.exists()
    assert available(user) == 1000
    page = response.content.decode()
    if field != "prompt":
        assert FORM["prompt"] in page
    if field not in ("image_url", "image"):
        assert f'value="{FORM["image_url"]}"' in page
    if field != "duration":
        assert 'value="8s" required id="id_duration_2" checked' in page


def test_a_bad_upload_is_explained_and_the_user_is_told_to_choose_the_file_again(logged_in):
    response = logged_in.post(
        reverse("studio"),
        {**FORM, "image_url": "", "image": jpeg_upload(size=(640, 360))},
    )
    assert response.status_code == 200
    assert "Veo needs at least 720p" in " ".join(response.context["form"].errors["image"])
    page = response.content.decode()
    assert "please choose your image again" in page
    assert FORM["prompt"] in page
    assert not Generation.objects.exists()


def test_short_credits_at_submit_are_a_form_error_and_nothing_is_held(client):
    poor = UserFactory(credits=100)
    client.force_login(poor)
    response = client.post(reverse("studio"), FORM)
    assert response.status_code == 200
    assert "This needs 320 credits; 100 are available." in response.content.decode()
    assert not Generation.objects.exists()
    assert available(poor) == 100


def test_a_blocked_term_is_refused_on_the_prompt_and_nothing_charged(logged_in, user):
    BlockedTerm.objects.create(term="forbidden thing")
    response = logged_in.post(reverse("studio"), {**FORM, "prompt": "A FORBIDDEN  thing, slowly"})
    assert response.context["form"].errors["prompt"] == [
        "This prompt contains a term that is not allowed."
    ]
    assert available(user) == 1000


def test_too_many_in_flight_is_explained(logged_in, user, settings):
    settings.MAX_IN_FLIGHT_PER_USER = 1
    logged_in.post(reverse("studio"), FORM)
    response = logged_in.post(reverse("studio"), {**FORM, "prompt": "Another one"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert Generation.objects.filter(owner=user).count() == 1


def test_posting_without_a_csrf_token_is_refused(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("studio"), FORM)
    assert response.status_code == 403
    assert "Please try again" in response.content.decode()
    assert not Generation.objects.exists()


def test_make_another_like_this_prefills_from_an_own_generation_only(logged_in, user, other_user):
    mine = GenerationFactory(owner=user, prompt="Mine, at dusk", duration="6s")
    theirs = GenerationFactory(owner=other_user, prompt="Theirs, at noon")
    page = logged_in.get(reverse("studio"), {"from": str(mine.pk)}).content.decode()
    assert "Mine, at dusk" in page
    assert f'value="{mine.image_url}"' in page
    assert "Choose the starting image again" not in page
    assert 'value="6s" required id="id_duration_1" checked' in page
    page = logged_in.get(reverse("studio"), {"from": str(theirs.pk)}).content.decode()
    assert "Theirs, at noon" not in page
    assert logged_in.get(reverse("studio"), {"from": "not-a-uuid"}).status_code == 200


def test_make_another_like_an_uploaded_image_reuses_the_stored_image(logged_in, user):
    logged_in.post(reverse("studio"), {**FORM, "image_url": "", "image": jpeg_upload()})
    source = Generation.objects.get(owner=user)
    page = logged_in.get(reverse("studio"), {"from": str(source.pk)}).content.decode()
    assert FORM["prompt"] in page
    assert f'name="source" value="{source.pk}"' in page
    assert reverse("generation-image", args=[source.pk]) in page
