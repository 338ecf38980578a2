"""When an in-flight video will be ready (generations/estimates.py): the median of recent
similar videos, the work ahead of it, the setting without history, nothing once final,
and what it costs in queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from generations import estimates, wording
from generations.models import Generation
from tests.factories import GenerationFactory, UserFactory

pytestmark = pytest.mark.django_db

S = Generation.Status


def made_in(seconds: float, *, ago: timedelta = timedelta(hours=1), **kind) -> Generation:
    """A video of `kind` (the factory's 8 s 720p with audio unless told) that succeeded
    `ago`, `seconds` after it was sent."""
    return finished(S.SUCCEEDED, seconds=seconds, ago=ago, **kind)


def finished(status, *, seconds: float = 60, ago: timedelta = timedelta(hours=1), **kind):
    generation = GenerationFactory(status=status, **kind)
    completed = timezone.now() - ago
    sent = completed - timedelta(seconds=seconds)
    Generation.objects.filter(pk=generation.pk).update(
        created_at=sent - timedelta(seconds=1),
        submitted_at=sent,
        started_at=sent + timedelta(seconds=seconds / 2),
        completed_at=completed,
    )
    generation.refresh_from_db()
    return generation


def rendering(*, sent_ago: float, **fields) -> Generation:
    sent = timezone.now() - timedelta(seconds=sent_ago)
    return GenerationFactory(status=S.RUNNING, submitted_at=sent, started_at=sent, **fields)


def seconds_from(now, when) -> float:
    return round((when - now).total_seconds(), 3)


# --- the usual time ------------------------------------------------------------------------


def test_a_rendering_video_is_ready_the_median_time_after_it_was_sent():
    for seconds in (60, 90, 300):
        made_in(seconds)
    generation = rendering(sent_ago=30)

    estimate = estimates.for_generations([generation])[generation.pk]

    assert estimate.ready_at == generation.submitted_at + timedelta(seconds=90)
    assert estimate.typical.samples == 3
    assert not estimate.overdue


def test_only_recent_videos_of_the_same_kind_count():
    for seconds in (100, 100, 100):
        made_in(seconds)
    made_in(1000, resolution="1080p")  # another resolution
    made_in(1000, generate_audio=False)  # without audio
    made_in(1000, duration="4s")  # shorter
    made_in(1000, endpoint="fal-ai/veo3.1/fast/image-to-video")  # another model
    made_in(1000, ago=timedelta(days=8))  # too old
    finished(S.FAILED, seconds=1000)  # not made

    typical = estimates.typical_time(
        endpoint="fal-ai/veo3.1/image-to-video",
        duration="8s",
        resolution="720p",
        generate_audio=True,
    )

    assert (typical.seconds, typical.samples) == (100, 3)


def test_the_median_is_of_the_last_fifty():
    for _ in range(estimates.RECENT_SAMPLES):
        made_in(100, ago=timedelta(hours=1))
    for _ in range(30):
        made_in(900, ago=timedelta(hours=5))  # earlier: left out of the last fifty

    generation = GenerationFactory()
    estimate = estimates.for_generations([generation])[generation.pk]

    assert estimate.typical.samples == estimates.RECENT_SAMPLES
    assert estimate.typical.seconds == 100


def test_without_history_the_setting_is_the_usual_time(settings):
    settings.GENERATION_TYPICAL_SECONDS = 200
    generation = GenerationFactory()  # pending
    now = timezone.now()

    estimate = estimates.for_generations([generation], now=now)[generation.pk]

    assert seconds_from(now, estimate.ready_at) == 200
    assert estimate.typical.samples == 0
    assert wording.ready_in(estimate, now=now) == "usually ready in about 3 minutes"


# --- the work ahead ------------------------------------------------------------------------


def test_ours_waiting_ahead_add_a_wave_per_concurrency_limit(settings):
    settings.GENERATION_TYPICAL_SECONDS = 120
    settings.FAL_MAX_CONCURRENCY = 2
    settings.FAL_QUEUE_POLICY = "fifo"  # the fair order: tests/generations/test_fair_share.py
    others = UserFactory()
    ahead = [GenerationFactory(owner=others, status=S.WAITING) for _ in range(3)]
    GenerationFactory(owner=others, status=S.SUCCEEDED)  # final: not ahead of anything
    mine = GenerationFactory(status=S.WAITING)
    now = timezone.now()

    found = estimates.for_generations([mine, ahead[0], ahead[2]], now=now)

    assert seconds_from(now, found[mine.pk].ready_at) == 240  # 3 ahead, 2 at a time
    assert found[mine.pk].waves == 1
    assert seconds_from(now, found[ahead[0].pk].ready_at) == 120  # first in line
    assert seconds_from(now, found[ahead[2].pk].ready_at) == 240
    assert wording.ready_in(found[mine.pk], now=now) == "ready in about 4 minutes"
    assert wording.ready_in(found[ahead[0].pk], now=now) == "usually ready in about 2 minutes"


def test_without_a_concurrency_limit_nothing_of_ours_waits(settings):
    settings.GENERATION_TYPICAL_SECONDS = 120
    settings.FAL_MAX_CONCURRENCY = 0
    for _ in range(5):
        GenerationFactory()
    mine = GenerationFactory()
    now = timezone.now()

    estimate = estimates.for_generations([mine], now=now)[mine.pk]

    assert seconds_from(now, estimate.ready_at) == 120


def test_jobs_ahead_in_the_video_services_line_add_their_turns(settings):
    settings.GENERATION_TYPICAL_SECONDS = 120
    sent = timezone.now() - timedelta(seconds=20)
    waiting = GenerationFactory(status=S.QUEUED, submitted_at=sent, fal_queue_position=2)
    next_in_line = GenerationFactory(status=S.QUEUED, submitted_at=sent, fal_queue_position=0)
    now = timezone.now()

    found = estimates.for_generations([waiting, next_in_line], now=now)

    assert found[waiting.pk].ready_at == sent + timedelta(seconds=120 + 2 * 120)
    assert found[next_in_line.pk].ready_at == sent + timedelta(seconds=120)
    assert wording.ready_in(found[next_in_line.pk], now=now) == "ready in about 2 minutes"


def test_a_video_past_its_estimate_is_soon_not_in_the_past(settings):
    settings.GENERATION_TYPICAL_SECONDS = 60
    late = rendering(sent_ago=600)
    now = timezone.now()

    estimate = estimates.for_generations([late], now=now)[late.pk]

    assert estimate.overdue
    assert estimate.ready_at == now + estimates.MIN_LEFT
    assert wording.ready_in(estimate, now=now) == "taking longer than usual, almost there"


def test_almost_ready_in_the_last_seconds(settings):
    settings.GENERATION_TYPICAL_SECONDS = 120
    generation = rendering(sent_ago=100)
    now = timezone.now()

    estimate = estimates.for_generations([generation], now=now)[generation.pk]

    assert wording.ready_in(estimate, now=now) == "almost ready"


# --- final videos, and the cost --------------------------------------------------------------


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED, S.CANCELED])
def test_a_final_video_has_no_estimate_and_costs_no_query(status, django_assert_num_queries):
    made_in(90)
    generation = finished(status)

    with django_assert_num_queries(0):
        assert estimates.estimated_ready_at(generation) is None
        assert estimates.for_generations([generation]) == {}


def test_one_query_per_kind_then_cached(django_assert_num_queries, settings):
    settings.FAL_MAX_CONCURRENCY = 0
    made_in(90)
    page = [rendering(sent_ago=10) for _ in range(6)]
    page += [rendering(sent_ago=10, resolution="1080p") for _ in range(6)]
    page += [GenerationFactory(status=S.SUCCEEDED) for _ in range(3)]

    with django_assert_num_queries(2):  # two kinds in flight
        first = estimates.for_generations(page)
    with django_assert_num_queries(0):  # the same page a moment later
        again = estimates.for_generations(page)

    assert len(first) == len(again) == 12
    cache.clear()  # after CACHE_SECONDS the median is read again
    with django_assert_num_queries(2):
        estimates.for_generations(page)


def test_the_work_ahead_of_a_page_is_four_queries(django_assert_num_queries, settings):
    settings.FAL_MAX_CONCURRENCY = 1
    page = [GenerationFactory(status=S.WAITING) for _ in range(10)]

    # The kind's median, then our queue for the page: its fair order, the round's state and
    # the slots in use.
    with django_assert_num_queries(4):
        found = estimates.for_generations(page)

    assert sorted(e.waves for e in found.values()) == list(range(10))


def test_the_median_is_cached_for_a_minute(settings, monkeypatch):
    made_in(90)
    timeouts = []
    real_set = cache.set
    # The cache is the machine's edge here: what is asked of it is the contract.
    monkeypatch.setattr(cache, "set", lambda *a, **k: timeouts.append(a[2]) or real_set(*a))

    estimates.for_generations([rendering(sent_ago=10)])

    assert timeouts == [estimates.CACHE_SECONDS] == [60]
