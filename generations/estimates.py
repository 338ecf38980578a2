"""When an in-flight video will probably be ready: the API's `estimated_ready_at` and the
portal's "ready in about N minutes".

The time a video takes is learned, not promised: the median time from being sent to
being ready of the last `RECENT_SAMPLES` videos of the same kind (model, duration,
resolution, audio) that succeeded in the last `RECENT_DAYS` days; with none,
`settings.GENERATION_TYPICAL_SECONDS`. Then:

- a video waiting in our own queue for one of fal's slots (`FAL_MAX_CONCURRENCY`,
  `generations.fair_share`) is ready that long from now, plus one such time per wave of
  the queue ahead of it: its place in the fair order (`queue_position`) less the slots free
  now, `FAL_MAX_CONCURRENCY` at a time;
- a video about to be sent (it has its slot, or there is no limit) is ready that long from
  now;
- a video in the video service's line is ready that long after it was sent, plus one such
  time per wave of the jobs ahead of it in that line (its queue position);
- a rendering video is ready that long after it was sent.

An estimate already past is not left in the past: it becomes `MIN_LEFT` from now and is
marked overdue (the portal says it is taking longer than usual). A final video has none.

Cost: one query per kind of video on a page, cached `CACHE_SECONDS` under one key per
kind (and `LOCAL_CACHE_SECONDS` in each process), and, only when the page shows a video
waiting in our queue, three more: the queue in its fair order, the round's state, the
slots in use. Read through `for_generations` (a page) or `attach` (cards).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from generations import fair_share
from generations.models import Generation
from veoproject.local_cache import LocalCache

RECENT_SAMPLES = 50
RECENT_DAYS = 7
CACHE_SECONDS = 60
MIN_LEFT = timedelta(seconds=15)


@dataclass(frozen=True)
class Typical:
    """How long a kind of video usually takes from being sent to being ready."""

    seconds: float
    samples: int  # how many recent videos it is the median of; 0 for the setting


@dataclass(frozen=True)
class Estimate:
    ready_at: datetime
    typical: Typical
    waves: int  # rounds of work ahead of it (see the module's docstring)
    sent: bool  # handed to the video service already
    overdue: bool  # it should have been ready by now
    # Its place in a line (0 = next): ours while it waits for a slot, fal's once queued
    # there (None when unknown, or not in a line).
    queue_position: int | None = None

    @property
    def usual(self) -> bool:
        """Not sent and nothing ahead: the estimate is just the usual time."""
        return not self.sent and not self.waves and not self.overdue

    def seconds_left(self, now: datetime | None = None) -> float:
        return max(0.0, (self.ready_at - (now or timezone.now())).total_seconds())

    @property
    def words(self) -> str:
        """In plain words, as the cards say it (`generations.wording.ready_in`)."""
        from generations import wording

        return wording.ready_in(self)


def _cache_key(*, endpoint: str, duration: str, resolution: str, generate_audio: bool) -> str:
    return f"generations:typical:{endpoint}:{duration}:{resolution}:{int(generate_audio)}"


# Each kind's typical time as this process last read it from the shared cache: every
# create's answer carries an estimate, and a learned median moves slowly.
_typicals: LocalCache[Typical] = LocalCache("typical_times")


def typical_time(*, endpoint: str, duration: str, resolution: str, generate_audio: bool) -> Typical:
    """The median time from sent to ready of recent successes of this kind (one query,
    then cached: CACHE_SECONDS in the shared cache, LOCAL_CACHE_SECONDS more in this
    process), or the setting when there are none."""
    key = _cache_key(
        endpoint=endpoint, duration=duration, resolution=resolution, generate_audio=generate_audio
    )
    return _typicals.get(
        key,
        lambda: _typical_time(
            key,
            endpoint=endpoint,
            duration=duration,
            resolution=resolution,
            generate_audio=generate_audio,
        ),
    )


def _typical_time(
    key: str, *, endpoint: str, duration: str, resolution: str, generate_audio: bool
) -> Typical:
    cached = cache.get(key)
    if isinstance(cached, Typical):
        return cached
    rows = (
        Generation.objects.filter(
            status=Generation.Status.SUCCEEDED,
            endpoint=endpoint,
            duration=duration,
            resolution=resolution,
            generate_audio=generate_audio,
            submitted_at__isnull=False,
            completed_at__gte=timezone.now() - timedelta(days=RECENT_DAYS),
        )
        .order_by("-completed_at")
        .values_list("submitted_at", "completed_at")[:RECENT_SAMPLES]
    )
    durations = [(done - sent).total_seconds() for sent, done in rows if done >= sent]
    if durations:
        typical = Typical(seconds=statistics.median(durations), samples=len(durations))
    else:
        typical = Typical(seconds=float(settings.GENERATION_TYPICAL_SECONDS), samples=0)
    cache.set(key, typical, CACHE_SECONDS)
    return typical


@dataclass(frozen=True)
class OurQueue:
    """Our queue for fal's slots as a page's estimates see it."""

    slots: int  # FAL_MAX_CONCURRENCY
    free: int  # slots free now
    positions: dict[UUID, int]  # every waiting generation's place in the fair order


def _our_queue(in_flight: list[Generation]) -> OurQueue | None:
    """Read only when the page shows a generation waiting for a slot."""
    if not any(generation.is_waiting for generation in in_flight):
        return None
    slots = fair_share.max_concurrency()
    positions = fair_share.queue_positions()
    free = max(slots - fair_share.slots_in_use(), 0) if slots else len(positions)
    return OurQueue(slots=slots or 1, free=free, positions=positions)


def for_generations(
    generations: Iterable[Generation], *, now: datetime | None = None
) -> dict[UUID, Estimate]:
    """The estimate of each in-flight generation among `generations`, by id (final ones
    have none)."""
    in_flight = [g for g in generations if not g.is_final]
    if not in_flight:
        return {}
    now = now or timezone.now()
    slots = fair_share.max_concurrency()
    queue = _our_queue(in_flight)
    typicals: dict[tuple[str, str, str, bool], Typical] = {}
    estimates = {}
    for generation in in_flight:
        kind = (
            generation.endpoint,
            generation.duration,
            generation.resolution,
            generation.generate_audio,
        )
        if kind not in typicals:
            typicals[kind] = typical_time(
                endpoint=kind[0], duration=kind[1], resolution=kind[2], generate_audio=kind[3]
            )
        estimates[generation.pk] = _estimate(
            generation, typical=typicals[kind], queue=queue, slots=slots, now=now
        )
    return estimates


def _waves_before_a_slot(position: int, queue: OurQueue) -> int:
    """Turns of fal's slots before the generation at `position` in our queue gets one: none
    while a free slot is left for it, then one per `slots` generations ahead."""
    if position < queue.free:
        return 0
    return -(-(position - queue.free + 1) // queue.slots)  # ceiling


def _estimate(
    generation: Generation,
    *,
    typical: Typical,
    queue: OurQueue | None,
    slots: int,
    now: datetime,
) -> Estimate:
    usual = timedelta(seconds=typical.seconds)
    sent = not (generation.is_pending or generation.is_waiting)
    position = None
    if generation.is_waiting and queue is not None:
        # Not in the order (it got its slot a moment ago): at the head of the line.
        position = queue.positions.get(generation.pk, 0)
        waves = _waves_before_a_slot(position, queue)
        ready_at = now + usual * (1 + waves)
    elif not sent:
        waves = 0  # its slot is granted (or there is no limit): it is being sent
        ready_at = now + usual
    else:
        sent_at = generation.submitted_at or generation.started_at or generation.created_at
        position = generation.fal_queue_position if generation.is_queued else None
        waves = (position or 0) // (slots or 1)
        ready_at = sent_at + usual
        if waves:  # the jobs ahead in the line start their turn from now at the earliest
            ready_at = max(ready_at, now) + usual * waves
    overdue = ready_at < now
    if overdue:
        ready_at = now + MIN_LEFT
    return Estimate(
        ready_at=ready_at,
        typical=typical,
        waves=waves,
        sent=sent,
        overdue=overdue,
        queue_position=position,
    )


def estimated_ready_at(generation: Generation) -> datetime | None:
    """When one generation will probably be ready; None once it is final."""
    estimate = for_generations([generation]).get(generation.pk)
    return estimate.ready_at if estimate else None


def attach(generations: Iterable[Generation]) -> list[Generation]:
    """The generations, each in flight with its `estimate` set for the templates (the
    cards, the status panel); final ones get None."""
    generations = list(generations)
    estimates = for_generations(generations)
    for generation in generations:
        generation.estimate = estimates.get(generation.pk)  # type: ignore[attr-defined]
    return generations


def place_in_line(generation: Generation, estimate: Estimate | None) -> int | None:
    """How many are ahead of a queued generation (0 = next): ours while it waits for one of
    fal's slots (the fair order, from its `estimate`), fal's once it is there; None when not
    queued or not known. The API's `queue_position` and the portal's card both say this."""
    if not generation.is_queued:
        return None
    if generation.is_waiting:
        return estimate.queue_position if estimate else None
    return generation.fal_queue_position
