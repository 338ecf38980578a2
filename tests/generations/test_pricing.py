"""The seeded price list (fal's list price at 100 credits per US dollar) and its errors."""

from __future__ import annotations

import pytest
from django.conf import settings

from generations.models import PricingRule
from generations.pricing import orderable_resolutions, quote
from veoproject.exceptions import PricingError

# $0.40/s with audio and $0.20/s without, at 720p and 1080p: 40 and 20 credits per second.
PRICE_TABLE = [
    # duration, resolution, audio, credits
    ("4s", "720p", True, 160),
    ("4s", "720p", False, 80),
    ("4s", "1080p", True, 160),
    ("4s", "1080p", False, 80),
    ("6s", "720p", True, 240),
    ("6s", "720p", False, 120),
    ("6s", "1080p", True, 240),
    ("6s", "1080p", False, 120),
    ("8s", "720p", True, 320),
    ("8s", "720p", False, 160),
    ("8s", "1080p", True, 320),
    ("8s", "1080p", False, 160),
]


@pytest.mark.parametrize(("duration", "resolution", "audio", "credits"), PRICE_TABLE)
def test_quote_follows_the_seeded_price_list(db, duration, resolution, audio, credits):
    result = quote(duration=duration, resolution=resolution, generate_audio=audio)

    assert result.credits == credits
    assert result.credits_per_second == (40 if audio else 20)
    assert result.breakdown == {
        "seconds": int(duration[0]),
        "credits_per_second": 40 if audio else 20,
        "resolution": resolution,
        "generate_audio": audio,
        "endpoint": settings.FAL_ENDPOINT,
    }


def test_the_price_table_covers_every_orderable_combination():
    combos = {(d, r, a) for d, r, a, _ in PRICE_TABLE}
    assert len(combos) == 12


@pytest.mark.parametrize("audio", [True, False])
def test_4k_is_refused_while_its_rule_is_inactive(db, audio):
    inactive = PricingRule.objects.filter(endpoint=settings.FAL_ENDPOINT, active=False)
    assert inactive.filter(resolution="4k").count() == 2

    with pytest.raises(PricingError) as caught:
        quote(duration="8s", resolution="4k", generate_audio=audio)

    assert caught.value.code == "no_price"
    assert "resolution" in caught.value.fields
    assert orderable_resolutions() == ["720p", "1080p"]


def test_4k_quotes_once_staff_activate_it(db):
    PricingRule.objects.filter(resolution="4k").update(active=True)

    assert quote(duration="8s", resolution="4k", generate_audio=True).credits == 480
    assert quote(duration="4s", resolution="4k", generate_audio=False).credits == 160
    assert orderable_resolutions() == ["720p", "1080p", "4k"]


def test_an_edited_rate_changes_the_quote(db):
    PricingRule.objects.filter(resolution="720p", generate_audio=True).update(credits_per_second=55)
    assert quote(duration="6s", resolution="720p", generate_audio=True).credits == 330


def test_a_deactivated_rule_no_longer_quotes(db):
    PricingRule.objects.filter(resolution="1080p", generate_audio=False).update(active=False)
    with pytest.raises(PricingError):
        quote(duration="4s", resolution="1080p", generate_audio=False)
    assert quote(duration="4s", resolution="1080p", generate_audio=True).credits == 160


@pytest.mark.parametrize("resolution", ["360p", "", "720P", "1080p ", "4K"])
def test_an_unknown_resolution_is_a_pricing_error(db, resolution):
    with pytest.raises(PricingError):
        quote(duration="8s", resolution=resolution, generate_audio=True)


@pytest.mark.parametrize("duration", ["5s", "8", "0s", "-4s", "10s", "", "\uff18s"])  # fullwidth 8
def test_an_unknown_duration_is_a_pricing_error(db, duration):
    with pytest.raises(PricingError) as caught:
        quote(duration=duration, resolution="720p", generate_audio=True)
    assert "duration" in caught.value.fields


def test_an_unknown_endpoint_is_a_pricing_error(db):
    with pytest.raises(PricingError):
        quote(
            duration="8s",
            resolution="720p",
            generate_audio=True,
            endpoint="fal-ai/veo3.1/text-to-video",
        )
