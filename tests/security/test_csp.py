"""A Content-Security-Policy on every page (issue 10).

Had the uploaded script of the review run on a portal or admin page (an injection we have
not found yet), the policy keeps it from running: scripts come only from our own static
files, never inline, never from another host. The browser side (no page breaks, no
violation in a normal flow) is tests/browser/test_polyglot_upload.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_strict_policy(response) -> None:
    assert response.status_code == 200
    policy = directives(response)
    scripts = policy.get("script-src") or policy["default-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    assert all(s == "'self'" or s.startswith("'nonce-") for s in scripts), scripts
    assert policy["default-src"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]


@pytest.mark.parametrize(
    "url", ["/accounts/login/", "/accounts/signup/", "/api/docs/", "/no-such-page/"]
)
def test_anonymous_pages_forbid_inline_and_foreign_scripts(client, url):
    response = client.get(url)
    if response.status_code == 404:  # our 404 page is a page too
        response.status_code = 200
    assert_strict_policy(response)


def test_portal_pages_forbid_inline_and_foreign_scripts(client, user):
    generation = GenerationFactory(owner=user)
    client.force_login(user)
    for url in (
        reverse("studio"),
        reverse("generation-list"),
        reverse("generation-detail", args=[generation.pk]),
        reverse("credits"),
        reverse("tokens"),
    ):
        assert_strict_policy(client.get(url))


def test_admin_pages_forbid_inline_and_foreign_scripts(client, staff_user, user):
    generation = GenerationFactory(owner=user)
    client.force_login(staff_user)
    for url in (
        reverse("admin:index"),
        reverse("admin:generations_generation_changelist"),
        reverse("admin:generations_generation_change", args=[generation.pk]),
        reverse("admin:accounts_user_change", args=[user.pk]),
        reverse("admin:generations_overview"),
    ):
        assert_strict_policy(client.get(url))


def test_media_keep_their_own_sandbox_policy(client, user):
    from django.core.files.base import ContentFile

    generation = GenerationFactory(owner=user, status="succeeded")
    generation.video.save("v.mp4", ContentFile(b"\x00mp4"))
    client.force_login(user)
    response = client.get(reverse("generation-video", args=[generation.pk]))
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: str(p.relative_to(TEMPLATES))
)
def test_no_template_carries_a_script_the_policy_would_block(template):
    text = template.read_text()
    assert not INLINE_SCRIPT.search(text), "inline <script>: move it to static/js/"
    assert not EVENT_HANDLER.search(text), "on...= handler: bind it in static/js/"
    assert not JAVASCRIPT_URL.search(text), "javascript: URL"
