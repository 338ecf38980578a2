"""What a stolen API token opens (issue 10, token scope).

A token must not hand out the webhook secret (its thief could forge callbacks to the
integrator), and a staff member's token acts for that staff member's own account only:
other people's media are for staff in a browser session (the admin).
"""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import tokens
from generations.models import Generation
from tests.factories import GenerationFactory
from tests.security.polyglot import polyglot_png

pytestmark = pytest.mark.django_db


def token_client(user) -> APIClient:
    _, raw = tokens.create_token(user=user, name="stolen")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def victims_generation(owner) -> Generation:
    generation = GenerationFactory(owner=owner, status="succeeded")
    generation.video.save("v.mp4", ContentFile(b"\x00\x00private video"))
    generation.image.save("input.png", ContentFile(polyglot_png()))
    Generation.objects.filter(pk=generation.pk).update(image_url="")
    return generation


def test_a_stolen_token_cannot_read_the_webhook_secret(user):
    body = token_client(user).get("/api/v1/me/").json()
    assert "webhook_secret" not in body
    assert user.webhook_secret not in str(body)


def test_the_schema_does_not_promise_the_webhook_secret_to_token_callers(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    me = schema["components"]["schemas"]["Me"]
    assert "webhook_secret" not in me.get("required", [])
    assert "never with an API token" in me["properties"]["webhook_secret"]["description"]


def test_a_stolen_staff_token_cannot_read_other_users_media(staff_user, user):
    generation = victims_generation(user)
    thief = token_client(staff_user)
    for name in ("generation-video", "generation-image"):
        assert thief.get(reverse(name, args=[generation.pk])).status_code == 404, name
    # Nor through the API's own views.
    assert thief.get(f"/api/v1/generations/{generation.pk}/").status_code == 404
    assert thief.get("/api/v1/generations/").json()["results"] == []


def test_staff_still_see_other_users_media_in_a_browser_session(client, staff_user, user):
    generation = victims_generation(user)
    client.force_login(staff_user)
    for name in ("generation-video", "generation-image"):
        assert client.get(reverse(name, args=[generation.pk])).status_code == 200, name


def test_a_staff_token_still_reads_its_own_media(staff_user):
    generation = victims_generation(staff_user)
    response = token_client(staff_user).get(reverse("generation-video", args=[generation.pk]))
    assert response.status_code == 200


def test_a_password_only_staff_session_cannot_read_other_users_media(
    client, staff_user, user, settings
):
    """The admin asks staff with TOTP (or all staff, with STAFF_REQUIRE_MFA) for a code;
    the media views open other people's files to staff too, so they ask the same: a
    stolen staff password alone opens nobody else's video."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    generation = victims_generation(user)
    client.force_login(staff_user)
    settings.STAFF_REQUIRE_MFA = True
    for name in ("generation-video", "generation-image"):
        assert client.get(reverse(name, args=[generation.pk])).status_code == 404, name

    settings.STAFF_REQUIRE_MFA = False
    TOTP.activate(staff_user, generate_totp_secret())
    assert client.get(reverse("generation-video", args=[generation.pk])).status_code == 404
    # Their own files stay theirs.
    own = victims_generation(staff_user)
    assert client.get(reverse("generation-video", args=[own.pk])).status_code == 200
