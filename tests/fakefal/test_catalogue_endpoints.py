"""The fake fal knows every Veo 3.1 endpoint of the catalogue and checks each one's input
against that endpoint's own schema, as fal does: the submit is taken, the 422 (fal's
pydantic detail shape) comes at the result. An endpoint fal does not have is a 404."""

from __future__ import annotations

import time
from typing import Any

import fal_client
import pytest

from generations import catalogue
from tests.fakefal import FakeFal

IMAGE = "https://example.test/in.jpg"
GOOD: dict[str, dict[str, Any]] = {
    "fal-ai/veo3.1": {"prompt": "p", "aspect_ratio": "9:16", "negative_prompt": "n", "seed": 1},
    "fal-ai/veo3.1/fast": {"prompt": "p", "duration": "4s", "resolution": "4k"},
    "fal-ai/veo3.1/image-to-video": {"prompt": "p", "image_url": IMAGE, "aspect_ratio": "auto"},
    "fal-ai/veo3.1/fast/image-to-video": {"prompt": "p", "image_url": IMAGE, "auto_fix": True},
    "fal-ai/veo3.1/first-last-frame-to-video": {
        "prompt": "p",
        "first_frame_url": IMAGE,
        "last_frame_url": IMAGE,
    },
    "fal-ai/veo3.1/fast/first-last-frame-to-video": {
        "prompt": "p",
        "first_frame_url": IMAGE,
        "last_frame_url": IMAGE,
        "safety_tolerance": "2",
    },
    "fal-ai/veo3.1/reference-to-video": {"prompt": "p", "image_urls": [IMAGE, IMAGE]},
}
# endpoint, input, the fields fal's 422 names (loc) and their error types
BAD: list[tuple[str, dict[str, Any], set[tuple[tuple[Any, ...], str]]]] = [
    (
        "fal-ai/veo3.1",
        {"prompt": "p", "image_url": IMAGE, "aspect_ratio": "auto"},
        {(("body", "image_url"), "extra_forbidden"), (("body", "aspect_ratio"), "enum")},
    ),
    (
        "fal-ai/veo3.1/first-last-frame-to-video",
        {"prompt": "p", "first_frame_url": IMAGE},
        {(("body", "last_frame_url"), "missing")},
    ),
    (
        "fal-ai/veo3.1/reference-to-video",
        {"prompt": "p", "image_urls": [IMAGE, 3], "duration": "4s", "seed": 1},
        {
            (("body", "image_urls", 1), "string_type"),
            (("body", "duration"), "enum"),
            (("body", "seed"), "extra_forbidden"),
        },
    ),
    (
        "fal-ai/veo3.1/reference-to-video",
        {"prompt": "p", "image_urls": []},
        {(("body", "image_urls"), "too_short")},
    ),
]


@pytest.fixture
def fal(fake_fal_factory) -> FakeFal:
    return fake_fal_factory(queue_seconds=0.02, run_seconds=0.05, max_concurrent=10)


@pytest.fixture
def client(fal) -> fal_client.SyncClient:
    return fal_client.SyncClient(key="test", default_timeout=5)


def _result(client: fal_client.SyncClient, endpoint: str, arguments: dict) -> Any:
    handle = client.submit(endpoint, arguments)  # fal takes anything at submit
    deadline = time.monotonic() + 5
    while not isinstance(handle.status(), fal_client.Completed):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return handle.get()


def test_the_fake_knows_exactly_the_catalogued_endpoints():
    from tests.fakefal.veo import SCHEMAS

    assert set(SCHEMAS) == set(catalogue.IDS)


@pytest.mark.parametrize("endpoint", list(GOOD))
def test_each_endpoint_takes_its_own_input(fal, client, endpoint):
    assert _result(client, endpoint, GOOD[endpoint])["video"]["url"]
    (job,) = fal.jobs()
    assert job.endpoint == endpoint


@pytest.mark.parametrize(("endpoint", "arguments", "expected"), BAD)
def test_each_endpoint_refuses_what_its_schema_does_not_take(client, endpoint, arguments, expected):
    with pytest.raises(fal_client.FalClientHTTPError) as refused:
        _result(client, endpoint, arguments)
    assert refused.value.status_code == 422
    detail = refused.value.response.json()["detail"]
    assert {(tuple(error["loc"]), error["type"]) for error in detail} == expected


def test_an_endpoint_fal_does_not_have_is_a_404(client):
    with pytest.raises(fal_client.FalClientHTTPError) as refused:
        client.submit("fal-ai/veo3.1/lite/image-to-video", GOOD["fal-ai/veo3.1/image-to-video"])
    assert refused.value.status_code == 404
