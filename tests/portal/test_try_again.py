"""Try again (issue 14): a failed or canceled video opens the studio filled in with its
prompt, options and stored image (no new upload), at today's price; only its owner may
use it, and the new video gets its own copy of the image."""

from __future__ import annotations

import re

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image

from accounts.models import CreditAccount
from generations.models import Generation, PricingRule
from generations.services.retrying import IMAGE_GONE
from tests.factories import GenerationFactory
from tests.portal.conftest import FORM, jpeg_upload

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


def numbers(user) -> tuple[int, int]:
    account = CreditAccount.objects.get(user=user)
    return account.balance, account.reserved


@pytest.fixture
def failed_upload(logged_in, user) -> Generation:
    """A 6 s 1080p silent 9:16 video from an uploaded image, failed, its hold released."""
    logged_in.post(
        reverse("studio"),
        {
            **FORM,
            "image_url": "",
            "image": jpeg_upload(size=(720, 1280)),
            "aspect_ratio": "9:16",
            "duration": "6s",
            "resolution": "1080p",
            "generate_audio": "",
            "prompt": "A kite rising over dunes",
        },
    )
    generation = Generation.objects.get(owner=user)
    logged_in.post(reverse("generation-cancel", args=[generation.pk]))
    Generation.objects.filter(pk=generation.pk).update(status="failed", error_code="timeout")
    generation.refresh_from_db()
    assert numbers(user) == (1000, 0)
    return generation


def again_form(page: str) -> dict[str, str]:
    """The studio form's values as a browser would send them."""
    values = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    for name in ("aspect_ratio", "duration", "resolution"):
        values[name] = re.search(
            rf'name="{name}" value="([^"]+)" required id="[^"]+" checked', page
        ).group(1)
    values["prompt"] = re.search(r"<textarea[^>]*>\n?(.*?)</textarea>", page, re.S).group(1)
    if re.search(r'name="generate_audio"[^>]*checked', page):
        values["generate_audio"] = "on"
    return values


@pytest.mark.parametrize("where", ["generation-list", "generation-detail"])
def test_failed_and_canceled_videos_offer_try_again(logged_in, user, where):
    failed = GenerationFactory(owner=user, status="failed", error_code="timeout")
    canceled = GenerationFactory(owner=user, status="canceled", error_code="canceled")
    done = GenerationFactory(owner=user, status="succeeded")
    for generation in (failed, canceled):
        url = (
            reverse(where, args=[generation.pk]) if where == "generation-detail" else reverse(where)
        )
        page = html(logged_in.get(url))
        assert f'href="{reverse("studio")}?from={generation.pk}" data-testid="try-again"' in page
    page = html(logged_in.get(reverse("generation-detail", args=[done.pk])))
    assert 'data-testid="try-again"' not in page


def test_try_again_fills_in_the_studio_with_the_stored_image_and_todays_price(
    logged_in, user, failed_upload
):
    PricingRule.objects.filter(resolution="1080p", generate_audio=False, active=True).update(
        credits_per_second=30
    )
    response = logged_in.get(reverse("studio"), {"from": str(failed_upload.pk)})
    page = html(response)
    values = again_form(page)
    assert values["prompt"] == "A kite rising over dunes"
    assert (values["aspect_ratio"], values["duration"], values["resolution"]) == (
        "9:16",
        "6s",
        "1080p",
    )
    assert "generate_audio" not in values
    assert values["source"] == str(failed_upload.pk)
    assert f'src="{reverse("generation-image", args=[failed_upload.pk])}"' in page
    assert not response.context["form"]["image_url"].value()
    # Today's price (6 s x 30 credits/s), not the 120 it cost then.
    assert response.context["quote"].credits == 180
    assert 'data-testid="price-credits">180<' in page


def test_try_again_reuses_the_stored_image_as_a_copy_of_its_own(logged_in, user, failed_upload):
    page = html(logged_in.get(reverse("studio"), {"from": str(failed_upload.pk)}))
    response = logged_in.post(reverse("studio"), again_form(page))
    assert response.status_code == 302, response.context["form"].errors
    again = Generation.objects.exclude(pk=failed_upload.pk).get(owner=user)
    assert again.prompt == "A kite rising over dunes"
    assert (again.aspect_ratio, again.duration, again.resolution, again.generate_audio) == (
        "9:16",
        "6s",
        "1080p",
        False,
    )
    assert again.image_url == ""
    assert again.image.name != failed_upload.image.name
    assert str(again.pk) in again.image.name
    assert numbers(user) == (1000, again.cost_credits)
    with again.image.open("rb") as stored, Image.open(stored) as picture:
        assert picture.size == (720, 1280)

    # Deleting one never deletes the other.
    default_storage.delete(failed_upload.image.name)
    assert default_storage.exists(again.image.name)


def test_the_same_try_again_sent_twice_makes_one_video(logged_in, user, failed_upload):
    page = html(logged_in.get(reverse("studio"), {"from": str(failed_upload.pk)}))
    form = again_form(page)
    logged_in.post(reverse("studio"), form)
    logged_in.post(reverse("studio"), form)
    assert Generation.objects.filter(owner=user).count() == 2
    assert numbers(user)[1] == 120


def test_a_new_file_replaces_the_stored_image(logged_in, user, failed_upload):
    page = html(logged_in.get(reverse("studio"), {"from": str(failed_upload.pk)}))
    form = {**again_form(page), "image": jpeg_upload(size=(1280, 720)), "aspect_ratio": "16:9"}
    assert logged_in.post(reverse("studio"), form).status_code == 302
    again = Generation.objects.exclude(pk=failed_upload.pk).get(owner=user)
    with again.image.open("rb") as stored, Image.open(stored) as picture:
        assert picture.size == (1280, 720)


def test_only_the_owner_can_try_again(client, other_user, failed_upload):
    client.force_login(other_user)
    page = html(client.get(reverse("studio"), {"from": str(failed_upload.pk)}))
    assert "A kite rising over dunes" not in page
    assert reverse("generation-image", args=[failed_upload.pk]) not in page
    # A hand-made form naming someone else's generation gets nothing of it.
    form = {**FORM, "image_url": "", "source": str(failed_upload.pk)}
    response = client.post(reverse("studio"), form)
    assert response.status_code == 200
    assert response.context["form"].errors["image"] == [IMAGE_GONE]
    assert not Generation.objects.filter(owner=other_user).exists()
    assert numbers(other_user) == (1000, 0)


def test_a_hidden_video_cannot_lend_its_image(logged_in, user, failed_upload):
    Generation.objects.filter(pk=failed_upload.pk).update(
        moderation_state="hidden", moderation_reason="Policy"
    )
    page = html(logged_in.get(reverse("generation-list")))
    assert 'data-testid="try-again"' not in page
    form = {**FORM, "image_url": "", "source": str(failed_upload.pk)}
    response = logged_in.post(reverse("studio"), form)
    assert response.context["form"].errors["image"] == [IMAGE_GONE]
    assert numbers(user) == (1000, 0)


def test_a_stored_image_that_is_gone_asks_for_an_image(logged_in, user, failed_upload):
    page = html(logged_in.get(reverse("studio"), {"from": str(failed_upload.pk)}))
    default_storage.delete(failed_upload.image.name)
    response = logged_in.post(reverse("studio"), again_form(page))
    assert response.status_code == 200
    assert response.context["form"].errors["image"] == [IMAGE_GONE]
    assert Generation.objects.filter(owner=user).count() == 1
    assert numbers(user) == (1000, 0)


def test_try_again_of_an_image_url_prefills_the_url(logged_in, user):
    source = GenerationFactory(owner=user, status="failed", error_code="invalid_input")
    page = html(logged_in.get(reverse("studio"), {"from": str(source.pk)}))
    assert f'value="{source.image_url}"' in page
    assert again_form(page).get("source", "") == ""
    assert 'data-testid="reused-image"' not in page
