"""The studio submits the quote its price box showed: the price shown is the price charged,
and a quote that expired or no longer fits is a form error with the price now."""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from generations import quotes
from generations.models import Generation, PricingRule, Quote
from tests.credits import numbers
from tests.portal.conftest import FORM

QUOTE_INPUT = re.compile(
    r'<input type="hidden" name="quote_id" value="([0-9a-f-]{36})" form="create-form"'
)


def shown_quote(response) -> str:
    """The quote id the price box carries for the create form."""
    found = QUOTE_INPUT.findall(response.content.decode())
    assert len(found) == 1, "the price box carries one quote"
    return found[0]


def studio_form(response) -> dict:
    """What the browser sends: the form as filled in, its key, and the shown quote."""
    return {
        **FORM,
        "idempotency_key": response.context["form"]["idempotency_key"].value(),
        "quote_id": shown_quote(response),
    }


def reprice(resolution: str = "720p", audio: bool = True, rate: int = 55) -> None:
    PricingRule.objects.filter(
        endpoint=settings.FAL_ENDPOINT, resolution=resolution, generate_audio=audio, active=True
    ).update(credits_per_second=rate)


def test_the_price_box_carries_a_quote_of_the_options_shown(logged_in, user):
    page = logged_in.get(reverse("studio"))
    record = Quote.objects.get(pk=shown_quote(page))
    assert record.owner == user
    assert record.cost_credits == page.context["quote"].credits == 320
    assert record.options == {"duration": "8s", "resolution": "720p", "generate_audio": True}

    preview = logged_in.get(reverse("quote-preview"), {"duration": "4s", "resolution": "1080p"})
    other = Quote.objects.get(pk=shown_quote(preview))
    assert other.options == {"duration": "4s", "resolution": "1080p", "generate_audio": False}
    assert other.cost_credits == preview.context["quote"].credits == 80


def test_an_unpriced_choice_carries_no_quote(logged_in):
    preview = logged_in.get(reverse("quote-preview"), {"duration": "8s", "resolution": "4k"})
    assert not QUOTE_INPUT.search(preview.content.decode())


def test_the_studio_charges_the_price_it_showed_after_staff_raised_it(logged_in, user):
    form = studio_form(logged_in.get(reverse("studio")))
    reprice(rate=55)

    response = logged_in.post(reverse("studio"), form)

    assert response.status_code == 302
    generation = Generation.objects.get(owner=user)
    assert generation.cost_credits == 320
    assert numbers(user) == (1000, 320)


def test_an_expired_quote_is_a_form_error_with_the_price_now(logged_in, user):
    form = studio_form(logged_in.get(reverse("studio")))
    Quote.objects.filter(pk=form["quote_id"]).update(expires_at=timezone.now())
    reprice(rate=50)

    response = logged_in.post(reverse("studio"), form)

    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert errors == [
        "The price shown was out of date: this video costs 400 credits now. Nothing was held; "
        "check the price and send it again."
    ]
    assert 'data-testid="form-errors"' in response.content.decode()
    assert not Generation.objects.exists()
    assert numbers(user) == (1000, 0)
    # The page shows the price now, with a fresh quote of it: sending again works.
    assert response.context["quote"].credits == 400
    fresh = shown_quote(response)
    assert fresh != form["quote_id"]
    again = logged_in.post(reverse("studio"), {**form, "quote_id": fresh})
    assert again.status_code == 302
    assert Generation.objects.get(owner=user).cost_credits == 400


def test_options_changed_after_the_quote_are_a_form_error_with_their_price(logged_in, user):
    form = studio_form(logged_in.get(reverse("studio")))  # quoted: 8 s with audio, 320
    response = logged_in.post(reverse("studio"), {**form, "duration": "4s"})
    assert response.status_code == 200
    assert "this video costs 160 credits now" in response.content.decode()
    assert not Generation.objects.exists()
    assert numbers(user) == (1000, 0)


def test_another_users_quote_is_refused_like_a_stale_one(logged_in, user, other_user):
    theirs = quotes.issue(user=other_user, params=FORM)
    form = studio_form(logged_in.get(reverse("studio")))
    response = logged_in.post(reverse("studio"), {**form, "quote_id": str(theirs.record.pk)})
    assert response.status_code == 200
    assert "this video costs 320 credits now" in response.content.decode()
    assert Quote.objects.get(pk=theirs.record.pk).used_at is None
    assert not Generation.objects.exists()


def test_a_mangled_quote_id_is_no_quote(logged_in, user):
    form = studio_form(logged_in.get(reverse("studio")))
    response = logged_in.post(reverse("studio"), {**form, "quote_id": "x" + str(uuid.uuid4())})
    assert response.status_code == 302
    assert Generation.objects.get(owner=user).cost_credits == 320


def test_the_generation_page_shows_the_price_as_line_items(logged_in, user):
    logged_in.post(reverse("studio"), studio_form(logged_in.get(reverse("studio"))))
    generation = Generation.objects.get(owner=user)

    page = logged_in.get(reverse("generation-detail", args=[generation.pk])).content.decode()

    lines = re.search(r'data-testid="price-lines">(.*?)</ul>', page, re.S)
    assert lines is not None
    # The template writes "seconds \N{MULTIPLICATION SIGN} rate".
    text = re.sub(r"<[^>]+>", "", lines.group(1)).replace("\N{MULTIPLICATION SIGN}", "x")
    assert "Model fal-ai/veo3.1/image-to-video: 8 s x 20 credits/s = 160" in text
    assert "Resolution 720p: 8 s x 0 credits/s = 0" in text
    assert "Audio with audio: 8 s x 20 credits/s = 160" in text
