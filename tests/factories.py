from __future__ import annotations

import io

import factory
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from accounts.models import User
from generations.models import Generation


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def credits(self, create: bool, extracted: int | None, **kwargs) -> None:
        """UserFactory(credits=500) grants 500 credits through the ledger."""
        self.save()
        if create and extracted:
            from accounts import ledger

            ledger.grant(user=self, amount=extracted, reason="test credits")


class GenerationFactory(factory.django.DjangoModelFactory):
    """A generation row as accept() would leave it, without the hold: use
    `generations.services.accept` when the test is about money."""

    class Meta:
        model = Generation

    owner = factory.SubFactory(UserFactory)
    prompt = "A slow dolly shot across a misty lake at dawn"
    image_url = "https://images.example.com/lake.jpg"
    aspect_ratio = "16:9"
    duration = "8s"
    resolution = "720p"
    generate_audio = True
    endpoint = factory.LazyFunction(lambda: settings.FAL_ENDPOINT)
    cost_credits = 320


# A valid generation request (the `valid_body` fixture hands out a fresh copy).
REQUEST_BODY = {
    "prompt": "A paper boat drifting down a rainy street, soft light",
    "image_url": "https://images.example.com/boat.jpg",
    "aspect_ratio": "16:9",
    "duration": "8s",
    "resolution": "1080p",
    "generate_audio": True,
}


def image_upload(
    size=(1280, 720), fmt="JPEG", name="input.jpg", content_type="image/jpeg"
) -> SimpleUploadedFile:
    """A real, valid image file as a browser would upload it (720p JPEG unless told)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buffer, format=fmt)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=content_type)
