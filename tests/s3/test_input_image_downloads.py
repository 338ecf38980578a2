"""An uploaded frame or reference with S3 storage (issue 15): Django checks access, then
redirects to a presigned URL whose answer is the image with our type and filename."""

from __future__ import annotations

import httpx
import pytest
from django.urls import reverse

from generations.models import GenerationImage
from tests.factories import GenerationFactory, image_upload
from tests.s3.conftest import MotoS3

pytestmark = pytest.mark.django_db


def test_an_uploaded_frame_goes_out_presigned_as_an_image(client, user, other_user, s3: MotoS3):
    generation = GenerationFactory(
        owner=user, model="fal-ai/veo3.1/first-last-frame-to-video", image_url=""
    )
    frame = GenerationImage(generation=generation, slot="last_frame_url", position=0)
    frame.image.save("last.png", image_upload(fmt="PNG", size=(64, 64)))
    path = reverse("generation-input-image", args=[generation.pk, 0])

    client.force_login(other_user)
    refused = client.get(path)
    assert refused.status_code == 404 and "Location" not in refused

    client.force_login(user)
    redirect = client.get(path)
    assert redirect.status_code == 302
    assert redirect["Cache-Control"] == "private, no-store"
    answer = httpx.get(redirect["Location"])
    assert answer.content == s3.read(frame.image.name)
    assert answer.headers["Content-Type"] == "image/png"
    assert answer.headers["Content-Disposition"] == f'inline; filename="{generation.pk}-0.png"'
    assert answer.headers["Cache-Control"] == "private, no-store"
