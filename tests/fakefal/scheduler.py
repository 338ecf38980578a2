"""Lazy, clock-driven queue: job states are derived from timestamps, not ticked.

Jobs run FIFO in submission order on ``max_concurrent`` slots, each needing at least
``queue_seconds`` in the queue first; a job with a start deadline (fal's
``X-Fal-Request-Timeout``) that is still queued at the deadline fails.
``advance(now)`` replays every start/end/expiry event up to ``now``; callers run it
before reading any state, so the answer depends only on when things were submitted and
cancelled. Cost: O(log n) per event; queue positions O(log n).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .veo import Outcome

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"


@dataclass(eq=False)
class Job:
    request_id: str
    seq: int
    owner: str
    app: str
    endpoint: str  # "owner/app[/path]" as submitted
    input: Any
    webhook_url: str | None
    submitted_at: float  # monotonic
    eligible_at: float  # submitted_at + queue_seconds
    run_seconds: float  # math.inf: never finishes
    outcome: Outcome
    errors: list[dict[str, Any]] = field(default_factory=list)  # 422 details if invalid
    webhook_faults: dict[str, float] = field(default_factory=dict)
    instant: bool = False  # completed at submit (the "webhook before response" fault)
    start_deadline: float | None = None  # from X-Fal-Request-Timeout
    state: str = IN_QUEUE
    started_at: float | None = None
    ended_at: float | None = None
    cancelled: bool = False
    expired: bool = False  # start deadline passed while queued

    @property
    def final_outcome(self) -> str:
        if self.cancelled:
            return "cancelled"
        return "start_timeout" if self.expired else self.outcome


class Scheduler:
    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max_concurrent
        # Lazy deletion everywhere: entries whose job changed state are skipped later.
        self._waiting: deque[Job] = deque()  # seq order
        self._running: list[tuple[float, int, Job]] = []  # heap by end time
        self._deadlines: list[tuple[float, int, Job]] = []  # heap by start deadline
        self.waiting_count = 0
        self.running_count = 0
        # The most jobs ever running at once: tests prove a client's concurrency limit by
        # the fake's own count.
        self.max_running_seen = 0
        # seqs that left the queue out of order (cancelled/expired while waiting, instant);
        # with FIFO starts they are the only gaps between the head and any waiting job.
        self._holes: list[int] = []
        self._clock = -math.inf  # time of the last processed event

    def submit(self, job: Job, now: float) -> list[Job]:
        finished = self.advance(now)
        if job.instant:
            job.state, job.started_at, job.ended_at = COMPLETED, now, now
            bisect.insort(self._holes, job.seq)
            finished.append(job)
        else:
            self._waiting.append(job)
            self.waiting_count += 1
            if job.start_deadline is not None:
                heapq.heappush(self._deadlines, (job.start_deadline, job.seq, job))
        return finished + self.advance(now)

    def cancel(self, job: Job, now: float) -> tuple[bool, list[Job]]:
        finished = self.advance(now)
        if job.state == COMPLETED:
            return False, finished
        if job.state == IN_QUEUE:
            self.waiting_count -= 1
            bisect.insort(self._holes, job.seq)
        else:
            self.running_count -= 1
        job.cancelled, job.state, job.ended_at = True, COMPLETED, now
        finished.append(job)
        return True, finished + self.advance(now)

    def set_max_concurrent(self, value: int, now: float) -> list[Job]:
        finished = self.advance(now)
        self.max_concurrent = value
        return finished + self.advance(now)

    def advance(self, now: float) -> list[Job]:
        """Apply all events up to ``now``; returns jobs that just completed."""
        finished: list[Job] = []
        while True:
            next_end, next_start, next_expiry = self._next_events()
            t = min(next_end, next_start, next_expiry)
            if t > now:
                break
            self._clock = max(self._clock, t)
            # On ties: ends first (a freed slot can start a job at t), and a job
            # starting exactly at its deadline starts.
            if next_end <= next_start and next_end <= next_expiry:
                _, _, job = heapq.heappop(self._running)
                self.running_count -= 1
                job.state, job.ended_at = COMPLETED, t
                finished.append(job)
            elif next_start <= next_expiry:
                job = self._waiting.popleft()
                self.waiting_count -= 1
                self.running_count += 1
                self.max_running_seen = max(self.max_running_seen, self.running_count)
                job.state, job.started_at = IN_PROGRESS, t
                heapq.heappush(self._running, (t + job.run_seconds, job.seq, job))
            else:
                _, _, job = heapq.heappop(self._deadlines)
                self.waiting_count -= 1
                bisect.insort(self._holes, job.seq)
                job.expired, job.state, job.ended_at = True, COMPLETED, t
                finished.append(job)
        # Nothing can start retroactively before now (slots were busy until now).
        self._clock = max(self._clock, now)
        return finished

    def next_event(self) -> float | None:
        t = min(self._next_events())
        return t if math.isfinite(t) else None

    def _next_events(self) -> tuple[float, float, float]:
        self._drop_stale()
        next_end = self._running[0][0] if self._running else math.inf
        next_start = math.inf
        if self._waiting and self.running_count < self.max_concurrent:
            next_start = max(self._waiting[0].eligible_at, self._clock)
        next_expiry = self._deadlines[0][0] if self._deadlines else math.inf
        return next_end, next_start, next_expiry

    def position(self, job: Job) -> int:
        """0-based count of live waiting jobs ahead of ``job`` (which must be waiting)."""
        self._drop_stale()
        head = self._waiting[0].seq
        gaps = bisect.bisect_left(self._holes, job.seq) - bisect.bisect_left(self._holes, head)
        return job.seq - head - gaps

    def _drop_stale(self) -> None:
        while self._waiting and self._waiting[0].state != IN_QUEUE:
            self._waiting.popleft()
        while self._running and self._running[0][2].state != IN_PROGRESS:
            heapq.heappop(self._running)
        while self._deadlines and self._deadlines[0][2].state != IN_QUEUE:
            heapq.heappop(self._deadlines)
