from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from generations import services
from generations.fal import reset_gateway
from generations.models import Generation


@pytest.fixture(autouse=True)
def _instant_simulated_fal(settings):
    """The simulated fal backend, finishing at once (its clock is the wall clock)."""
    settings.FAL_KEY = ""
    settings.FAL_SIMULATED = True
    settings.FAL_SIMULATED_QUEUE_SECONDS = 0
    settings.FAL_SIMULATED_RUN_SECONDS = 0
    reset_gateway()
    yield
    reset_gateway()


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def jpeg_upload(size=(1280, 720), name="still.jpg") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buffer, format="JPEG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/jpeg")


FORM = {
    "prompt": "A paper boat drifting down a rainy street, soft light",
    "image_url": "https://images.example.com/boat.jpg",
    "aspect_ratio": "16:9",
    "duration": "8s",
    "resolution": "720p",
    "generate_audio": "on",
}

PARAMS = {
    "prompt": FORM["prompt"],
    "image_url": FORM["image_url"],
    "aspect_ratio": "16:9",
    "duration": "8s",
    "resolution": "720p",
    "generate_audio": True,
}


def sweep_now() -> None:
    """One status sweep as if every in-flight generation were due."""
    Generation.objects.in_flight().update(next_poll_at=None)
    services.sweep()


@pytest.fixture
def run_generation(django_capture_on_commit_callbacks):
    """`run_generation(user, prompt=...)`: accept through the real service, let the worker
    tasks run inline, sweep once; returns the generation in its final state."""

    def run(user, **overrides) -> Generation:
        with django_capture_on_commit_callbacks(execute=True):
            generation = services.accept(user=user, params={**PARAMS, **overrides}).generation
        sweep_now()
        generation.refresh_from_db()
        return generation

    return run
