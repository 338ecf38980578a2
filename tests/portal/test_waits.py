"""The portal's honest waits: in-flight cards and the generation page say when the video
will be ready, in plain words, from generations/estimates.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from generations.models import Generation
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db

S = Generation.Status


@pytest.fixture(autouse=True)
def _two_minutes(settings):
    settings.GENERATION_TYPICAL_SECONDS = 120
    settings.FAL_MAX_CONCURRENCY = 0


def made_in(seconds: int) -> None:
    generation = GenerationFactory(status=S.SUCCEEDED)
    completed = timezone.now() - timedelta(hours=1)
    Generation.objects.filter(pk=generation.pk).update(
        created_at=completed - timedelta(seconds=seconds + 1),
        submitted_at=completed - timedelta(seconds=seconds),
        completed_at=completed,
    )


def test_a_waiting_card_says_the_usual_time(logged_in, user):
    GenerationFactory(owner=user)

    page = logged_in.get(reverse("generation-list")).content.decode()

    assert "usually ready in about 2 minutes" in page


def test_a_rendering_card_says_the_time_left_from_recent_videos(logged_in, user):
    for seconds in (300, 360, 420):
        made_in(seconds)
    sent = timezone.now() - timedelta(seconds=60)
    GenerationFactory(owner=user, status=S.RUNNING, submitted_at=sent, started_at=sent)

    page = logged_in.get(reverse("generation-list")).content.decode()

    assert "ready in about 5 minutes" in page  # 6 minutes as usual, 1 gone
    assert "usually ready" not in page


def test_the_studio_and_the_polled_card_say_it_too(logged_in, user):
    generation = GenerationFactory(owner=user)

    studio = logged_in.get(reverse("studio")).content.decode()
    card = logged_in.get(reverse("generation-status-partial", args=[generation.pk]))

    assert "usually ready in about 2 minutes" in studio
    assert "usually ready in about 2 minutes" in card.content.decode()


def test_the_generation_page_says_it_and_offers_notifications(logged_in, user):
    generation = GenerationFactory(owner=user, status=S.QUEUED, submitted_at=timezone.now())

    page = logged_in.get(reverse("generation-detail", args=[generation.pk])).content.decode()
    panel = logged_in.get(
        reverse("generation-status-partial", args=[generation.pk]) + "?for=detail"
    ).content.decode()

    assert "ready in about 2 minutes" in page
    assert "data-notify-slot" in page
    assert "ready in about 2 minutes" in panel


def test_a_final_video_has_no_estimate(logged_in, user):
    generation = GenerationFactory(owner=user, status=S.SUCCEEDED)

    page = logged_in.get(reverse("generation-detail", args=[generation.pk])).content.decode()
    gallery = logged_in.get(reverse("generation-list")).content.decode()

    assert "ready in about" not in page + gallery
    assert 'data-testid="estimate"' not in page + gallery
    assert "data-notify-slot" not in page
