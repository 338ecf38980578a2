"""End to end, for every model of the catalogue: quoted and created through the API,
submitted by a real qcluster to the model's own endpoint on the fake fal (which checks the
input against that endpoint's schema, as fal does), completed, the video copied, and
exactly the quoted price captured, with the ledger clean."""

from __future__ import annotations

import io

import httpx
import pytest
from django.core.management import call_command

from accounts import ledger
from accounts.models import CreditAccount, LedgerEntry
from accounts.tokens import create_token
from generations import catalogue
from generations.models import Generation
from tests.e2e.fixtures import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.pg]

IMAGES = "https://images.example.com"
# What each kind of model is sent: its images as public URLs under fal's field names.
IMAGES_BY_KIND: dict[str, dict] = {
    "none": {},
    "image": {"image_url": f"{IMAGES}/boat.jpg"},
    "first_last": {
        "first_frame_url": f"{IMAGES}/dawn.jpg",
        "last_frame_url": f"{IMAGES}/dusk.jpg",
    },
    "references": {"image_urls": [f"{IMAGES}/cat.jpg", f"{IMAGES}/hat.jpg"]},
}


def _body(model: catalogue.Model) -> dict:
    """A request that uses what this model allows beyond its defaults: its shortest
    duration, its last aspect ratio, no audio and its optional arguments."""
    body = {
        "model": model.id,
        "prompt": f"A paper boat drifting down a rainy street ({model.label})",
        **IMAGES_BY_KIND[model.images],
        "duration": model.durations[0],
        "aspect_ratio": model.aspect_ratios[-1],
        "resolution": "1080p",
        "generate_audio": False,
    }
    if model.negative_prompt:
        body["negative_prompt"] = "people"
    if model.seed:
        body["seed"] = 42
    if model.safety_tolerance:
        body["safety_tolerance"] = "2"
    return body


@pytest.mark.parametrize("model_id", catalogue.IDS)
def test_every_model_is_quoted_created_completed_and_settled(
    model_id, start_worker, fake_fal_factory, live_server, user
):
    model = catalogue.get(model_id)
    fal = fake_fal_factory(queue_seconds=0.2, run_seconds=0.5)
    worker = start_worker(fal=fal)
    _, secret = create_token(user=user, name="e2e")
    api = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"})
    body = _body(model)

    offered = {entry["id"] for entry in api.get("/api/v1/models/").json()}
    assert model_id in offered
    quote = api.post("/api/v1/generations/quote/", json=body)
    assert quote.status_code == 200, quote.text
    created = api.post("/api/v1/generations/", json={**body, "quote_id": quote.json()["quote_id"]})
    assert created.status_code == 201, created.text
    assert created.json()["model"] == model_id

    generation = wait_for(
        lambda: Generation.objects.filter(
            pk=created.json()["id"], status__in=Generation.FINAL
        ).first(),
        timeout=40,
    )
    assert generation.status == "succeeded", (generation.error_message, worker.log()[-3000:])
    video = api.get(api.get(f"/api/v1/generations/{generation.pk}/").json()["video_url"])
    assert video.content[4:8] == b"ftyp"

    # The model's own endpoint got the model's own arguments, and took them.
    (submit,) = fal.requests("submit")
    assert submit.path.strip("/") == model_id
    sent = submit.body
    assert {name: sent[name] for name in model.image_fields} == {
        name: IMAGES_BY_KIND[model.images][name] for name in model.image_fields
    }
    assert "image_url" not in sent or model.images == "image"
    for name in ("duration", "aspect_ratio", "resolution", "generate_audio"):
        assert sent[name] == body[name]
    for name in model.optional_arguments:
        assert sent.get(name) == body.get(name)

    cost = quote.json()["cost_credits"]
    usd = model.usd_per_second[("1080p", False)]
    assert cost == int(usd * 100) * int(body["duration"].rstrip("s"))  # 100 credits per USD
    assert list(
        LedgerEntry.objects.filter(generation=generation)
        .order_by("id")
        .values_list("kind", "amount", "reserved_change")
    ) == [("hold", 0, cost), ("capture", -cost, -cost)]
    assert CreditAccount.objects.get(user=user).balance == 1000 - cost
    assert ledger.broken_accounts() == []
    out = io.StringIO()
    call_command("check_ledger", stdout=out)
    assert "ledger OK" in out.getvalue()
