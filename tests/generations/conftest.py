from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image


@pytest.fixture(autouse=True)
def _instant_simulated_fal(settings):
    """The simulated backend finishes at once (the gateway is made fresh per test)."""
    settings.FAL_SIMULATED_QUEUE_SECONDS = 0
    settings.FAL_SIMULATED_RUN_SECONDS = 0


def image_upload(
    size=(1280, 720), fmt="JPEG", name="input.jpg", content_type="image/jpeg"
) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buffer, format=fmt)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=content_type)


PARAMS = {
    "prompt": "A paper boat drifting down a rainy street, soft light",
    "image_url": "https://images.example.com/boat.jpg",
    "aspect_ratio": "16:9",
    "duration": "8s",
    "resolution": "1080p",
    "generate_audio": True,
}


@pytest.fixture
def real_fal(fake_fal_factory, settings, monkeypatch):
    """Point the real gateway (fal-client) at a fresh fake fal and return the fake's
    factory: `real_fal(queue_seconds=0, run_seconds=0.2)`. No webhooks (the site is not
    public), short HTTP timeouts, and no pause between fal-client's own retries."""
    settings.FAL_KEY = "key-id:key-secret"
    settings.FAL_SIMULATED = False
    settings.FAL_HTTP_TIMEOUT = 5.0
    settings.PUBLIC_BASE_URL = ""
    monkeypatch.setattr("fal_client.client._get_retry_delay", lambda *args, **kwargs: 0.0)
    return fake_fal_factory
