from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from django.core import mail

from generations import services
from generations.models import Generation
from tests.factories import REQUEST_BODY


@pytest.fixture(autouse=True)
def _instant_simulated_fal(settings):
    """The simulated backend finishes at once; links in emails start with this site."""
    settings.FAL_SIMULATED_QUEUE_SECONDS = 0
    settings.FAL_SIMULATED_RUN_SECONDS = 0
    settings.PUBLIC_BASE_URL = "https://veo.example.com"


@pytest.fixture
def at_commit(django_capture_on_commit_callbacks) -> Callable[[], AbstractContextManager]:
    """Run what the block enqueues at commit (tasks run inline: django-q2 sync mode)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def run_video(at_commit) -> Callable[..., Generation]:
    """Accept a request and let the simulated fal finish it, as the worker would."""

    def run(user, **changes) -> Generation:
        with at_commit():
            generation = services.accept(user=user, params={**REQUEST_BODY, **changes}).generation
        with at_commit():
            Generation.objects.in_flight().update(next_poll_at=None)
            services.sweep()
        generation.refresh_from_db()
        return generation

    return run


def sent(subject: str) -> list[mail.EmailMessage]:
    return [message for message in mail.outbox if message.subject == subject]


def html_of(message) -> str:
    (html, mimetype), *_ = message.alternatives
    assert mimetype == "text/html"
    return html


def link_in(text: str, path_fragment: str) -> str:
    """The absolute link in an email's text that contains `path_fragment`."""
    for url in re.findall(r"https?://\S+", text):
        if path_fragment in url:
            return url
    raise AssertionError(f"no link with {path_fragment!r} in:\n{text}")
