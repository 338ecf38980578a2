"""What fal bills for a generation: recorded at submit from the active fal price (through
the real fal client against the fake fal), seeded from fal's pages, and a duplicate POST
visible as a possible extra cost."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from generations import costs, services
from generations.models import FalPrice, Generation, PricingRule
from tests.factories import REQUEST_BODY

pytestmark = pytest.mark.django_db

I2V = "fal-ai/veo3.1/image-to-video"


@pytest.fixture
def fal(real_fal):
    """The real gateway against a fresh fake fal (`real_fal` in tests/conftest.py)."""
    return real_fal(queue_seconds=30, run_seconds=30)


def submitted(user, **params) -> Generation:
    generation = services.accept(user=user, params={**REQUEST_BODY, **params}).generation
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.status == "queued", generation.error_message
    return generation


# fal's list price per second for our endpoint (seeded by migration 0006) x seconds.
@pytest.mark.parametrize(
    ("resolution", "audio", "duration", "expected"),
    [
        ("720p", False, "4s", Decimal("0.80")),
        ("720p", True, "4s", Decimal("1.60")),
        ("1080p", False, "6s", Decimal("1.20")),
        ("1080p", True, "8s", Decimal("3.20")),
        ("4k", False, "8s", Decimal("3.20")),
        ("4k", True, "6s", Decimal("3.60")),
    ],
)
def test_fal_cost_is_recorded_at_submit_for_each_resolution_and_audio(
    fal, user, resolution, audio, duration, expected
):
    PricingRule.objects.filter(resolution="4k").update(active=True)  # orderable for the test
    user.credit_account.balance = 10_000
    user.credit_account.save()

    generation = submitted(user, resolution=resolution, generate_audio=audio, duration=duration)

    assert generation.fal_cost_usd == expected
    assert len(fal.requests("submit")) == 1


def test_the_cost_is_not_known_before_submit(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    assert generation.fal_cost_usd is None


def test_the_price_active_at_submit_applies(fal, user, staff_user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation  # 1080p, audio, 8s
    price = FalPrice.objects.get(endpoint=I2V, resolution="1080p", generate_audio=True, active=True)
    price.usd_per_second = Decimal("0.45")
    costs.save_fal_price(price=price, actor=staff_user, reason="fal raised its price")

    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.fal_cost_usd == Decimal("3.60")


def test_without_an_active_price_the_cost_stays_empty_and_is_logged(fal, user, caplog):
    FalPrice.objects.filter(endpoint=I2V, resolution="1080p").update(active=False)

    with caplog.at_level(logging.WARNING, logger="generations.costs"):
        generation = submitted(user)

    assert generation.fal_cost_usd is None
    assert any("event=fal_price_missing" in r.getMessage() for r in caplog.records)
    assert f"generation={generation.pk}" in caplog.text


def test_a_duplicate_post_is_visible_as_a_possible_extra_cost(fal, user, staff_user, client):
    # The fake creates the job, then drops the connection: fal-client retries the POST,
    # and fal now has two (billed) jobs for one generation.
    fal.fail_next("submit", "drop")

    generation = submitted(user)

    assert generation.fal_submit_count == 2
    assert len(fal.requests("submit")) == 2
    assert generation.fal_cost_usd == Decimal("3.20")
    client.force_login(staff_user)
    page = client.get(reverse("admin:generations_generation_change", args=[generation.pk]))
    assert "up to $3.20: 1 extra POST(s) may have left a billed job on fal." in (
        page.content.decode()
    )


def test_fal_prices_are_seeded_from_fals_pages_for_the_veo_endpoints(db):
    active = FalPrice.objects.filter(active=True)
    assert set(active.values_list("endpoint", flat=True)) == {
        "fal-ai/veo3.1",
        "fal-ai/veo3.1/reference-to-video",
        "fal-ai/veo3.1/fast/first-last-frame-to-video",
        "fal-ai/veo3.1/image-to-video",
        "fal-ai/veo3.1/fast",
        "fal-ai/veo3.1/fast/image-to-video",
        "fal-ai/veo3.1/first-last-frame-to-video",
    }
    t2v = active.get(endpoint="fal-ai/veo3.1", resolution="4k", generate_audio=True)
    assert t2v.usd_per_second == Decimal("0.60") and t2v.confirmed
    assert t2v.source_url == "https://fal.ai/models/fal-ai/veo3.1/llms.txt"
    fast_flf = active.get(
        endpoint="fal-ai/veo3.1/fast/first-last-frame-to-video",
        resolution="720p",
        generate_audio=True,
    )
    assert fast_flf.usd_per_second == Decimal("0.15") and fast_flf.confirmed
    # Our own endpoint's price is not stated on a fal page: seeded, and marked as such.
    ours = active.get(endpoint=I2V, resolution="1080p", generate_audio=False)
    assert ours.usd_per_second == Decimal("0.20") and not ours.confirmed
    assert ours.source.startswith("UNCONFIRMED")
    assert not active.filter(
        endpoint="fal-ai/veo3.1/first-last-frame-to-video", resolution="4k"
    ).exists()


# --- staff edit fal prices in the admin --------------------------------------------------------


def price_form(price: FalPrice, **changes) -> dict:
    data = {
        "endpoint": price.endpoint,
        "resolution": price.resolution,
        "generate_audio": "on" if price.generate_audio else "",
        "usd_per_second": str(price.usd_per_second),
        "active": "on" if price.active else "",
        "source_url": price.source_url,
        "source": price.source,
        "change_reason": "fal's page now says $0.45",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_staff_edit_a_fal_price_with_a_reason(client, staff_user):
    price = FalPrice.objects.get(endpoint=I2V, resolution="1080p", generate_audio=True)
    client.force_login(staff_user)
    assert client.get(reverse("admin:generations_falprice_changelist")).status_code == 200
    url = reverse("admin:generations_falprice_change", args=[price.pk])
    assert client.get(url).status_code == 200

    response = client.post(
        url,
        price_form(
            price, usd_per_second="0.45", source="fal: $0.45 per second with audio (checked)"
        ),
    )

    assert response.status_code == 302
    price.refresh_from_db()
    assert (price.usd_per_second, price.updated_by) == (Decimal("0.45"), staff_user)
    assert price.confirmed
    log = LogEntry.objects.get(object_id=str(price.pk))
    assert log.user == staff_user
    assert "usd_per_second: 0.4000 -> 0.45" in log.change_message
    assert "Reason: fal's page now says $0.45" in log.change_message


def test_a_fal_price_change_needs_a_reason(client, staff_user):
    price = FalPrice.objects.get(endpoint=I2V, resolution="1080p", generate_audio=True)
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:generations_falprice_change", args=[price.pk]),
        price_form(price, usd_per_second="0.45", change_reason="  "),
    )

    assert response.status_code == 200
    price.refresh_from_db()
    assert price.usd_per_second == Decimal("0.40")
    assert not LogEntry.objects.exists()


def test_staff_add_a_fal_price_for_a_new_endpoint(client, staff_user):
    client.force_login(staff_user)
    assert client.get(reverse("admin:generations_falprice_add")).status_code == 200

    response = client.post(
        reverse("admin:generations_falprice_add"),
        {
            "endpoint": "fal-ai/veo3.1/lite/image-to-video",
            "resolution": "720p",
            "generate_audio": "on",
            "usd_per_second": "0.05",
            "active": "on",
            "source_url": "https://fal.ai/models/fal-ai/veo3.1/lite/image-to-video/llms.txt",
            "source": "fal: 720p with audio $0.05/s",
            "change_reason": "trying the lite model",
        },
    )

    assert response.status_code == 302
    added = FalPrice.objects.get(endpoint="fal-ai/veo3.1/lite/image-to-video")
    assert added.updated_by == staff_user
    assert LogEntry.objects.get(object_id=str(added.pk)).change_message.startswith(
        "fal price created"
    )
