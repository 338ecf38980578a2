from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generations.fal import reset_gateway
from generations.fal_webhooks import key_cache


@pytest.fixture(autouse=True)
def _fresh_gateway(settings):
    """Each test gets the gateway its settings ask for (simulated unless FAL_KEY)."""
    settings.FAL_SIMULATED_QUEUE_SECONDS = 0
    settings.FAL_SIMULATED_RUN_SECONDS = 0
    reset_gateway()
    key_cache.clear()
    yield
    reset_gateway()
    key_cache.clear()


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
