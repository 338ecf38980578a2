"""PUBLIC_BASE_URL is checked when settings load: a malformed address would put broken
links in every email and hand fal URLs it cannot reach."""

from __future__ import annotations

import pytest

from tests.processes import run_python

LOAD = (
    "import django; django.setup(); from django.conf import settings; "
    "print(repr(settings.PUBLIC_BASE_URL))"
)


@pytest.mark.parametrize(
    "value",
    [
        "veo.example.com",  # no scheme
        "ftp://veo.example.com",
        "https://",
        "https://veo.example.com/veo",  # a path: our paths are appended to it
        "https://veo.example.com?x=1",
        "https://veo.example.com#top",
        "https://user:pass@veo.example.com",
    ],
)
def test_a_malformed_public_address_stops_the_settings(value):
    done = run_python(LOAD, timeout=60, PUBLIC_BASE_URL=value)
    assert done.returncode != 0
    assert "ImproperlyConfigured: PUBLIC_BASE_URL is the site's address" in done.stderr


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("https://veo.example.com", "https://veo.example.com"),
        ("https://veo.example.com/", "https://veo.example.com"),
        (" http://127.0.0.1:8000 ", "http://127.0.0.1:8000"),
        ("", ""),
    ],
)
def test_a_site_address_is_kept_without_its_trailing_slash(value, kept):
    done = run_python(LOAD, timeout=60, PUBLIC_BASE_URL=value)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == repr(kept)
