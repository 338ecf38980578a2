"""The chaos run: many users, concurrent API traffic with idempotent retries, a fake fal
that fails at random, two real worker clusters, one SIGKILLed and restarted mid-run.

`ChaosRun.run()` drives one run and returns a `ChaosReport`; `verify()` holds the
invariants (see tests/chaos/test_chaos.py). Sizes and timings come from the environment:

* CHAOS_GENERATIONS (default 200): planned create requests (one generation each).
* CHAOS_USERS (default 20), CHAOS_CLIENT_THREADS (default 16).
* CHAOS_SEED: the fake's fault plan and the client's choices (default: random, printed).
* CHAOS_DEADLINE_SECONDS (default 60): GENERATION_DEADLINE_SECONDS for the run, so jobs
  that never finish are reconciled within it.
* CHAOS_SETTLE_SECONDS (default 240): how long after the last accept every generation
  must be final.
* CHAOS_LOCK_SECONDS (default 10): how long fal's account stays locked, from half-way
  through the accepts (0: no lock).
* CHAOS_FORGE_INTERVAL (default 0.25): seconds between two forged webhooks (0: none).
* CHAOS_LOG_DIR: when set, the worker logs are copied there (qcluster-<label>-<n>.log),
  and this process's log (the web tier: accepts, webhooks) goes to web-<label>.log.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from django.apps import apps
from django.db import close_old_connections, connection
from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from accounts.models import CreditAccount, LedgerEntry
from accounts.tokens import create_token
from generations.fal_webhooks import webhook_token
from generations.models import FalAccount, Generation
from generations.schedules import ensure_schedules
from tests.e2e.fixtures import REPO_ROOT, database_url
from tests.factories import UserFactory

CREDITS_PER_USER = 200_000

# What the fake does, per request or per job (probabilities). Submits: 429 and nginx
# 502 are retried inside fal_client; 500 comes back to us (our backoff); "drop" creates
# the job and cuts the connection (fal_client posts again: a possible duplicate); "reset"
# cuts before anything happens; "slow" answers after the worker's HTTP timeout (the
# outcome is unknown to us, the job exists).
FAULTS = {
    "submit": {"429": 0.08, "500": 0.05, "502": 0.05, "drop": 0.03, "reset": 0.02, "slow": 0.02},
    "status": {"500": 0.03, "502": 0.03, "drop": 0.02, "slow": 0.01},
    "result": {"502": 0.04, "drop": 0.02},
    "files": {"500": 0.03, "drop": 0.02},
    "cancel": {"500": 0.1},
}
JOB_RATES = {
    "job_failure_rate": 0.04,  # COMPLETED with runner_disconnected
    "job_timeout_rate": 0.02,  # COMPLETED with request_timeout
    "content_policy_rate": 0.03,  # 422 at the result
    "never_finish_rate": 0.03,  # stays IN_PROGRESS: the deadline reconciles it
}
WEBHOOK_RATES = {
    "webhook_duplicate_rate": 0.15,
    "webhook_delay_rate": 0.15,  # delivered late, so out of order with later jobs
    "webhook_delay_seconds": 4.0,
    "webhook_early_rate": 0.05,  # before the submit's answer reaches the worker
    "webhook_drop_rate": 0.05,  # never delivered: polling must notice
}
FAKE_TIMING = {"queue_seconds": 0.3, "run_seconds": 1.5, "max_concurrent": 24}
THINK_SECONDS = 2.0  # a client pauses up to this long before each request
WORKER_HTTP_TIMEOUT = 4.0  # FAL_HTTP_TIMEOUT for the workers
SLOW_SECONDS = 6.0  # a "slow" fault answers after this: past the worker's timeout
PROBE_SECONDS = 2.0  # FAL_PROBE_MIN_SECONDS for the workers: the first probe of a pause


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


# --- The plan --------------------------------------------------------------------------


@dataclass
class Planned:
    index: int
    user: int
    body: dict[str, Any]
    key: str | None
    mode: str  # once | retry | race | cancel | reuse


@dataclass
class Outcome:
    planned: Planned
    ids: list[str] = field(default_factory=list)  # generation ids answered (all the same)
    statuses: list[int] = field(default_factory=list)
    cancel_status: int | None = None
    reuse_status: int | None = None
    error: str = ""


MODES = [("once", 0.55), ("retry", 0.2), ("race", 0.1), ("cancel", 0.07), ("reuse", 0.08)]


def make_plan(n: int, users: int, rng: random.Random) -> list[Planned]:
    plan = []
    for index in range(n):
        prompt = f"Chaos run shot {index}: a lighthouse in a storm, waves breaking"
        if rng.random() < 0.05:
            prompt += f" [fal:slow={rng.choice([4, 6, 8])}]"
        body = {
            "prompt": prompt,
            "image_url": f"https://images.example.com/chaos/{index}.jpg",
            "aspect_ratio": rng.choice(["16:9", "9:16"]),
            "duration": rng.choice(["4s", "6s", "8s"]),
            "resolution": rng.choice(["720p", "1080p"]),
            "generate_audio": rng.random() < 0.5,
        }
        mode = rng.choices([m for m, _ in MODES], weights=[w for _, w in MODES])[0]
        key = None if mode == "once" and rng.random() < 0.3 else f"chaos-{index}-{rng.random()}"
        plan.append(Planned(index=index, user=index % users, body=body, key=key, mode=mode))
    return plan


# --- Another fal customer: forged webhooks ---------------------------------------------------

# The attacker is any fal user: fal signs their webhooks with the same keys as ours
# (tests/fakefal/README.md, "Forging"), so each forgery below verifies as fal's. What it
# cannot have is a generation's URL token; the kinds that carry the right one play a token
# that leaked (a log, a proxy), to show that the request id still binds the job.
ATTACKER_USER_ID = "another-fal-customer"
FORGERIES: dict[str, int] = {  # kind -> the answer it must get
    "no_token": 401,  # our URL without ?token=
    "token_of_another_generation": 401,  # the token of a generation the attacker holds
    "other_request_id": 401,  # the right token, the attacker's own job
    "body_request_id_not_signed_one": 401,  # signed for the generation's job, body another
    "other_fal_user": 401,  # all right but fal's user id (FAL_WEBHOOK_USER_ID is pinned)
    "stale_replay": 401,  # all right but an hour old (a captured delivery, replayed)
    "malformed": 400,  # ?generation= is not an id
}
# Kinds that carry the victim's own token: sent only once the victim knows its job, since
# before that a webhook with a valid token may rightly adopt its job (fal's answer to the
# submit was lost), and a generation final without a job answers "already_final".
NEEDS_JOB = {"other_request_id", "body_request_id_not_signed_one", "other_fal_user", "stale_replay"}
FORGED_MARK = "forged"  # in every attacker video URL


@dataclass
class Forgery:
    kind: str
    payload: str  # ok (an attacker's video) | error (would fail and refund)
    generation: str
    expected: int
    answered: int | str  # the HTTP status, or the transport error


class Forger:
    """A thread that, while the run goes on, posts validly signed webhooks about live
    generations to the live server, of every kind an attacker would, and records the answers.
    `control()` then sends genuine ones (right token, job and user) to final generations:
    they must be answered 200 and change nothing, so the 401s above are the binding's work,
    not a signature path that refuses everything."""

    def __init__(self, *, fal, base_url: str, seed: int, interval: float) -> None:
        self.fal = fal
        self.url = base_url + reverse("fal-webhook")
        self.rng = random.Random(seed + 1)
        self.interval = interval
        self.sent: list[Forgery] = []
        self.controls: list[tuple[str, int | str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-forger", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self._forge_one()
                except Exception as exc:  # recorded; the run goes on
                    self.sent.append(Forgery("crashed", "", "", 0, repr(exc)[:200]))
        finally:
            connection.close()  # this thread's own connection

    def _body(self, payload: str, request_id: str) -> dict[str, Any]:
        if payload == "ok":
            n = len(self.sent)
            url = self.rng.choice(
                [
                    f"https://attacker.example/{FORGED_MARK}-{n}.mp4",
                    # On fal's own CDN (the fake's host): the media host check passes.
                    f"https://{self.fal.host}/files/{FORGED_MARK}-{n}.mp4",
                ]
            )
            body = {"payload": {"video": {"url": url}}, "status": "OK", "error": None}
        else:
            detail = [
                {"loc": ["body", "prompt"], "msg": "Flagged.", "type": "content_policy_violation"}
            ]
            body = {
                "payload": {"detail": detail},
                "status": "ERROR",
                "error": "Invalid status code: 422",
            }
        return {**body, "request_id": request_id, "gateway_request_id": request_id}

    def _forge_one(self) -> None:
        rows = list(Generation.objects.order_by("?").values_list("id", "fal_request_id")[:2])
        if not rows:
            return
        victim, job = str(rows[0][0]), rows[0][1]
        other = str(rows[1][0]) if len(rows) > 1 else str(uuid.uuid4())
        kinds = [k for k in FORGERIES if job or k not in NEEDS_JOB]
        kind = self.rng.choice(kinds)
        payload = self.rng.choice(["ok", "error"])
        attacker_job = f"attacker-{uuid.uuid4()}"
        request_id = job or attacker_job  # the strongest attacker knows the victim's job
        query: dict[str, str] = {"generation": victim, "token": webhook_token(victim)}
        signed: dict[str, Any] = {"request_id": request_id}
        body = self._body(payload, request_id)
        if kind == "no_token":
            del query["token"]
        elif kind == "token_of_another_generation":
            query["token"] = webhook_token(other)
        elif kind == "other_request_id":
            signed["request_id"] = attacker_job
            body = self._body(payload, attacker_job)
        elif kind == "body_request_id_not_signed_one":
            body = self._body(payload, attacker_job)
        elif kind == "other_fal_user":
            signed["user_id"] = ATTACKER_USER_ID
        elif kind == "stale_replay":
            signed["timestamp"] = int(time.time()) - 3600
        elif kind == "malformed":
            query["generation"] = victim[:8]
        try:
            answered: int | str = self.fal.forge_webhook(
                f"{self.url}?{urlencode(query)}", body, **signed
            )
        except httpx.HTTPError as exc:
            answered = f"{exc.__class__.__name__}: {exc}"
        self.sent.append(Forgery(kind, payload, victim, FORGERIES[kind], answered))

    def control(self, limit: int = 10) -> None:
        """Genuine webhooks (an ERROR) for final generations that know their job."""
        final = Generation.objects.filter(status__in=Generation.FINAL).exclude(fal_request_id="")
        for gid, job in final.order_by("?").values_list("id", "fal_request_id")[:limit]:
            query = urlencode({"generation": str(gid), "token": webhook_token(gid)})
            try:
                answered = self.fal.forge_webhook(
                    f"{self.url}?{query}", self._body("error", job), request_id=job
                )
            except httpx.HTTPError as exc:
                answered = f"{exc.__class__.__name__}: {exc}"
            self.controls.append((str(gid), answered))


# --- fal locks our account ---------------------------------------------------------------------


@dataclass
class LockWindow:
    """What the account lock did, seconds from the start of the accepts."""

    seconds: float
    started: float | None = None
    ended: float | None = None
    paused_seen: float | None = None  # first FalAccount.dispatch_paused seen
    pause_reason: str = ""
    resumed_seen: float | None = None  # first not-paused seen after the unlock
    accepted: list[str] = field(default_factory=list)  # generations created while locked
    at_unlock: dict[str, int] = field(default_factory=dict)  # their statuses then
    error: str = ""


class AccountLock:
    """A thread that locks fal's account (403 "User is locked. Reason: Exhausted balance")
    once `due()` says so, for `seconds`, then unlocks it, watching `FalAccount` all along:
    dispatch must pause while locked and resume by the workers' probe afterwards."""

    POLL = 0.2

    def __init__(self, *, fal, seconds: float, due: Callable[[], bool], t0: float) -> None:
        self.fal = fal
        self.due = due
        self.t0 = t0
        self.window = LockWindow(seconds=seconds)
        self._thread = threading.Thread(target=self._run, name="chaos-lock", daemon=True)

    def start(self) -> None:
        if self.window.seconds > 0:
            self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _since(self) -> float:
        return time.monotonic() - self.t0

    def _look(self) -> bool:
        account = FalAccount.objects.filter(pk=1).first()
        paused = bool(account and account.dispatch_paused)
        if paused and self.window.paused_seen is None:
            self.window.paused_seen = self._since()
            self.window.pause_reason = account.pause_reason
        return paused

    def _run(self) -> None:
        w = self.window
        try:
            give_up = time.monotonic() + 180
            while not self.due() and time.monotonic() < give_up:
                time.sleep(0.05)
            self.fal.lock_account("Exhausted balance")
            try:
                w.started = self._since()
                locked_from = timezone.now()  # after the lock: every submit of these is refused
                end = time.monotonic() + w.seconds
                while time.monotonic() < end:
                    self._look()
                    time.sleep(self.POLL)
                # What was accepted meanwhile, as it stands before the unlock (after it, the
                # probe may take one at once).
                created = list(
                    Generation.objects.filter(created_at__gte=locked_from).values_list(
                        "pk", "status"
                    )
                )
                w.at_unlock = dict(Counter(status for _, status in created))
                w.accepted = [str(pk) for pk, _ in created]
            finally:
                self.fal.unlock_account()
                w.ended = self._since()
            give_up = time.monotonic() + 120
            while time.monotonic() < give_up:
                if not self._look() and w.paused_seen is not None:
                    w.resumed_seen = self._since()
                    return
                if w.paused_seen is None and self._since() - w.ended > 5:
                    return  # never paused: verify() says so
                time.sleep(self.POLL)
        except Exception as exc:  # reported by verify()
            w.error = repr(exc)[:300]
        finally:
            connection.close()


# --- The report --------------------------------------------------------------------------


@dataclass
class ChaosReport:
    label: str
    seed: int
    planned: int
    outcomes: list[Outcome]
    accept_seconds: float
    settle_seconds: float | None
    killed_at: float | None
    fal_stats: dict[str, Any]
    generations: list[dict[str, Any]]
    entries: dict[str, list[tuple[str, int, int]]]
    check_ledger: subprocess.CompletedProcess | None = None
    broken: list[dict] = field(default_factory=list)
    balances: dict[int, tuple[int, int]] = field(default_factory=dict)  # user -> (bal, res)
    expected_balances: dict[int, int] = field(default_factory=dict)
    worker_logs: list[str] = field(default_factory=list)
    forgeries: list[Forgery] = field(default_factory=list)
    controls: list[tuple[str, int | str]] = field(default_factory=list)  # (generation, answer)
    lock: LockWindow | None = None
    refused_while_locked: Counter[str] = field(default_factory=Counter)  # prompt -> 403s
    fal_jobs: set[str] = field(default_factory=set)  # request ids of every job fal created
    dispatch_paused_at_end: bool = False
    started_at: Any = None  # wall clock of the first accept (datetime)
    lock_events: list[str] = field(default_factory=list)  # the workers' pause/probe log lines

    # ---- derived figures

    def jobs_per_generation(self) -> dict[str, int]:
        """fal jobs created per generation, from the fake's count per prompt (prompts
        are unique per planned request, replays share the prompt of their generation)."""
        by_prompt = self.fal_stats.get("submits_by_prompt", {})
        return {g["id"]: by_prompt.get(g["prompt"], 0) for g in self.generations}

    def duplicates(self) -> list[dict[str, Any]]:
        jobs = self.jobs_per_generation()
        return [{**g, "jobs": jobs[g["id"]]} for g in self.generations if jobs[g["id"]] > 1]

    def uncounted_duplicates(self) -> list[dict[str, Any]]:
        """Duplicate fal jobs our own `fal_submit_count` does not account for."""
        return [d for d in self.duplicates() if d["jobs"] > max(d["fal_submit_count"], 1)]

    def settled_twice(self) -> int:
        settlements = ("capture", "release")
        return sum(
            1
            for rows in self.entries.values()
            if sum(1 for kind, *_ in rows if kind in settlements) > 1
        )

    def summary(self) -> str:
        c = Counter(self.fal_stats.get("counters", {}))
        outcomes = Counter(
            f"{g['status']}" + (f" ({g['error_code']})" if g["error_code"] else "")
            for g in self.generations
        )
        modes = Counter(o.planned.mode for o in self.outcomes)
        faults = sorted(
            (k.removeprefix("faults."), v) for k, v in c.items() if k.startswith("faults.")
        )
        dup, uncounted = self.duplicates(), self.uncounted_duplicates()
        resubmits = sum(1 for g in self.generations if g["attempts"] > 1)
        lines = [
            f"== chaos run [{self.label}] seed={self.seed} planned={self.planned} "
            f"generations={len(self.generations)}",
            f"  accept phase {self.accept_seconds:.1f} s; worker SIGKILLed at "
            f"+{self.killed_at or 0:.1f} s and restarted; settled "
            + (f"{self.settle_seconds:.1f} s after the accepts" if self.settle_seconds else "NOT"),
            "  requests: " + ", ".join(f"{m} {n}" for m, n in sorted(modes.items())),
            "  outcomes:",
            *[f"    {n:5d}  {name}" for name, n in sorted(outcomes.items())],
            "  fal traffic: "
            + ", ".join(
                f"{k} {c[k]}"
                for k in ("submit", "status", "result", "cancel", "files", "jobs_created")
            ),
            "  faults injected:",
            *[f"    {n:5d}  {name}" for name, n in faults],
            "  jobs: "
            + ", ".join(f"{k.removeprefix('jobs.outcome.')} {v}" for k, v in sorted(c.items())
                        if k.startswith("jobs.outcome.")),
            "  webhooks: "
            + ", ".join(f"{k.removeprefix('webhooks.')} {v}" for k, v in sorted(c.items())
                        if k.startswith("webhooks.")),
            f"  submit retries by us (attempts > 1): {resubmits}; fal_submit_count > 1: "
            f"{sum(1 for g in self.generations if g['fal_submit_count'] > 1)}",
            f"  generations with duplicate fal jobs: {len(dup)} (not counted by us: "
            f"{len(uncounted)}); settled more than once: {self.settled_twice()}",
            *self._forgery_lines(),
            *self._lock_lines(c),
            *self._last_lines(),
        ]  # fmt: skip
        return "\n".join(lines)

    def _last_lines(self, n: int = 3) -> list[str]:
        """The generations that ended last: what the settle time waited for."""
        if self.started_at is None:
            return []

        def at(t) -> str:
            return f"+{(t - self.started_at).total_seconds():.0f}" if t else "-"

        ended = [g for g in self.generations if g["settled_at"]]
        last = sorted(ended, key=lambda g: g["settled_at"], reverse=True)[:n]
        return [
            "  settled last (s from the first accept: accepted/submitted/completed/settled):"
        ] + [
            f"    {g['id']} {g['status']}{'/' + g['error_code'] if g['error_code'] else ''} "
            f"{at(g['created_at'])}/{at(g['submitted_at'])}/{at(g['completed_at'])}/"
            f"{at(g['settled_at'])} attempts={g['attempts']} posts={g['fal_submit_count']} "
            f"finish_failures={g['finish_failures']} prompt={g['prompt'][-30:]!r}"
            for g in last
        ]

    def _forgery_lines(self) -> list[str]:
        answers = Counter(str(f.answered) for f in self.forgeries)
        kinds = Counter(f.kind for f in self.forgeries)
        controls = Counter(str(answer) for _, answer in self.controls)
        return [
            f"  forged webhooks: {len(self.forgeries)} sent, answered "
            + (", ".join(f"{a} x{n}" for a, n in sorted(answers.items())) or "-"),
            "    " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
            f"  genuine webhooks to final generations (control): {len(self.controls)}, "
            "answered " + (", ".join(f"{a} x{n}" for a, n in sorted(controls.items())) or "-"),
        ]

    def _lock_lines(self, counters: Counter) -> list[str]:
        w = self.lock
        if w is None or w.started is None:
            return ["  account lock: none"]

        def at(t: float | None) -> str:
            return f"+{t:.1f} s" if t is not None else "never"

        events = Counter(line.split("event=", 1)[1].split(" ", 1)[0] for line in self.lock_events)
        resumed = [line for line in self.lock_events if "event=fal_dispatch_resumed" in line]
        gens = {g["id"]: g for g in self.generations}
        final = Counter(gens[gid]["status"] for gid in w.accepted if gid in gens)
        resumed_after = (
            f" ({w.resumed_seen - w.ended:.1f} s after the unlock)"
            if w.resumed_seen is not None and w.ended is not None
            else ""
        )
        return [
            f"  account lock ({w.seconds:.0f} s, Exhausted balance): {at(w.started)} to "
            f"{at(w.ended)}; dispatch paused seen {at(w.paused_seen)} ({w.pause_reason or '-'}), "
            f"resumed seen {at(w.resumed_seen)}{resumed_after}; paused at the end: "
            f"{'yes' if self.dispatch_paused_at_end else 'no'}",
            f"    submits fal refused while locked: {counters['submits_refused_locked']} "
            f"(for {len(self.refused_while_locked)} generations); accepted while locked: "
            f"{len(w.accepted)}, at the unlock "
            + (", ".join(f"{k} {n}" for k, n in sorted(w.at_unlock.items())) or "-")
            + ", at the end "
            + (", ".join(f"{k} {n}" for k, n in sorted(final.items())) or "-"),
            f"    worker log: probes {events['fal_dispatch_probe']}, refused submits "
            f"{events['fal_submit_refused_account']}, "
            + (resumed[-1].split("event=", 1)[1] if resumed else "no fal_dispatch_resumed"),
        ]


# --- The run -----------------------------------------------------------------------------


class ChaosRun:
    def __init__(
        self,
        *,
        label: str,
        fal,
        start_worker: Callable[..., Any],
        base_url: str,
        worker_env: dict[str, str],
    ) -> None:
        self.label = label
        self.fal = fal
        self.start_worker = start_worker
        self.base_url = base_url
        self.worker_env = worker_env
        self.n = env_int("CHAOS_GENERATIONS", 200)
        self.users_count = env_int("CHAOS_USERS", 20)
        self.threads = env_int("CHAOS_CLIENT_THREADS", 16)
        self.deadline_seconds = env_int("CHAOS_DEADLINE_SECONDS", 60)
        self.settle_seconds = env_int("CHAOS_SETTLE_SECONDS", 240)
        self.seed = env_int("CHAOS_SEED", random.SystemRandom().randrange(1_000_000))
        self.lock_seconds = env_float("CHAOS_LOCK_SECONDS", 10.0)
        self.forge_interval = env_float("CHAOS_FORGE_INTERVAL", 0.25)
        self.rng = random.Random(self.seed)
        self._done = 0
        self._done_lock = threading.Lock()

    # ---- setup

    def prepare(self, settings) -> None:
        # This process is the web tier (live server): lift throttles and the in-flight
        # cap (the throttles read these settings per request), shorten the deadline.
        settings.API_CREATE_RATE = None
        settings.API_READ_RATE = None
        settings.MAX_IN_FLIGHT_PER_USER = 0
        settings.GENERATION_DEADLINE_SECONDS = self.deadline_seconds
        # Pin fal's user id, as an operator does once the first webhook logged it: a
        # forged webhook signed for another fal user must be refused for that alone.
        settings.FAL_WEBHOOK_USER_ID = self.fal.config.user_id
        # The transactional test flush removed the minutely sweep schedule: restore it,
        # as migrate does in production (it restarts a sweep chain that died with a worker).
        ensure_schedules(sender=None, app_config=apps.get_app_config("generations"))
        self.fal.configure(
            seed=self.seed,
            slow_seconds=SLOW_SECONDS,
            faults=FAULTS,
            **FAKE_TIMING,
            **JOB_RATES,
            **WEBHOOK_RATES,
        )
        self.users = []
        for i in range(self.users_count):
            user = UserFactory(username=f"chaos{i}", credits=CREDITS_PER_USER)
            _, secret = create_token(user=user, name="chaos")
            self.users.append((user, secret))

    def worker(self):
        return self.start_worker(
            fal=self.fal,
            webhooks=True,
            GENERATION_DEADLINE_SECONDS=str(self.deadline_seconds),
            FAL_HTTP_TIMEOUT=str(WORKER_HTTP_TIMEOUT),
            FAL_PROBE_MIN_SECONDS=str(PROBE_SECONDS),
            **self.worker_env,
        )

    # ---- the client side

    def _post(self, client: httpx.Client, body, key) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return client.post("/api/v1/generations/", json=body, headers=headers)

    def _send(self, planned: Planned, clients: list[httpx.Client]) -> Outcome:
        client = clients[planned.user]
        outcome = Outcome(planned)

        def create() -> None:
            response = self._post(client, planned.body, planned.key)
            outcome.statuses.append(response.status_code)
            if response.status_code == 201:
                outcome.ids.append(response.json()["id"])
            else:
                outcome.error = response.text[:300]

        time.sleep(self.rng.random() * THINK_SECONDS)  # spread the accepts over the run
        try:
            if planned.mode == "race":
                other = threading.Thread(target=create)
                other.start()
                create()
                other.join(timeout=60)
            else:
                create()
                if planned.mode == "retry":
                    time.sleep(self.rng.random() * 0.2)
                    create()
                elif planned.mode == "cancel" and outcome.ids:
                    time.sleep(self.rng.random() * 0.5)
                    response = client.post(f"/api/v1/generations/{outcome.ids[0]}/cancel/")
                    outcome.cancel_status = response.status_code
                elif planned.mode == "reuse" and outcome.ids:
                    changed = {**planned.body, "prompt": planned.body["prompt"] + " (changed)"}
                    outcome.reuse_status = self._post(client, changed, planned.key).status_code
        except httpx.HTTPError as exc:
            outcome.error = f"{exc.__class__.__name__}: {exc}"
        finally:
            with self._done_lock:
                self._done += 1
        return outcome

    # ---- the run

    def run(self, settings) -> ChaosReport:
        web_log = self._web_log()
        try:
            return self._run(settings)
        finally:
            if web_log is not None:
                logging.getLogger().removeHandler(web_log)
                web_log.close()

    def _web_log(self) -> logging.Handler | None:
        target = os.environ.get("CHAOS_LOG_DIR", "").strip()
        if not target:
            return None
        os.makedirs(target, exist_ok=True)
        slug = self.label.lower().replace(" ", "-")
        handler = logging.FileHandler(os.path.join(target, f"web-{slug}.log"), mode="w")
        handler.setFormatter(
            logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
        )
        handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(handler)
        return handler

    def _run(self, settings) -> ChaosReport:
        self.prepare(settings)
        workers = [self.worker(), self.worker()]
        plan = make_plan(self.n, self.users_count, self.rng)
        clients = [
            httpx.Client(
                base_url=self.base_url,
                headers={"Authorization": f"Bearer {secret}"},
                timeout=60.0,
            )
            for _, secret in self.users
        ]
        t0 = time.monotonic()
        self.started_at = timezone.now()
        killed_at = None
        forger = Forger(
            fal=self.fal, base_url=self.base_url, seed=self.seed, interval=self.forge_interval
        )
        # fal locks the account half-way through the accepts (after the kill, at a third).
        lock = AccountLock(
            fal=self.fal, seconds=self.lock_seconds, due=lambda: self._done >= self.n // 2, t0=t0
        )
        try:
            forger.start()
            lock.start()
            with ThreadPoolExecutor(self.threads) as pool:
                futures = [pool.submit(self._send, p, clients) for p in plan]
                # The chaos monkey: once a third of the requests are answered and the
                # victim cluster is busy with them, SIGKILL it (in the middle of submits,
                # polls, finishes, maybe the sweep chain), then start a new one.
                kill_deadline = time.monotonic() + 120
                while time.monotonic() < kill_deadline and not (
                    self._done >= self.n // 3 and "event=fal_submitted" in workers[0].log()
                ):
                    time.sleep(0.05)
                killed_at = time.monotonic() - t0
                workers[0].kill()
                time.sleep(2)
                workers.append(self.worker())
                outcomes = [f.result(timeout=300) for f in futures]
            accept_seconds = time.monotonic() - t0
            settled = self._settle()
        finally:
            for client in clients:
                client.close()
            forger.stop()
            lock.join(timeout=180)
            self.fal.unlock_account()
        forger.control()
        report = self._report(plan, outcomes, accept_seconds, settled, killed_at, workers)
        report.forgeries, report.controls = forger.sent, forger.controls
        report.lock = lock.window
        report.started_at = self.started_at
        self._keep_logs(workers)
        return report

    def _keep_logs(self, workers) -> None:
        target = os.environ.get("CHAOS_LOG_DIR", "").strip()
        if not target:
            return
        os.makedirs(target, exist_ok=True)
        slug = self.label.lower().replace(" ", "-")
        for n, w in enumerate(workers):
            with open(os.path.join(target, f"qcluster-{slug}-{n}.log"), "w") as out:
                out.write(w.log())

    def _settle(self) -> float | None:
        start = time.monotonic()
        deadline = start + self.settle_seconds
        in_flight = Generation.objects.in_flight()
        while time.monotonic() < deadline:
            if not in_flight.exists():
                return time.monotonic() - start
            time.sleep(1.0)
        close_old_connections()
        return None

    def _report(self, plan, outcomes, accept_seconds, settled, killed_at, workers) -> ChaosReport:
        generations = list(
            Generation.objects.values(
                "id", "owner_id", "prompt", "status", "error_code", "cost_credits",
                "fal_submit_count", "attempts", "fal_request_id", "video", "video_bytes",
                "idempotency_key", "lease_until", "next_poll_at", "deadline_at",
                "fal_video_url", "finish_failures", "error_message", "created_at",
                "submitted_at", "completed_at",
            )
        )  # fmt: skip
        for g in generations:
            g["id"] = str(g["id"])
        entries: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        settled_at = {}
        for gid, kind, amount, reserved, at in (
            LedgerEntry.objects.exclude(generation=None)
            .order_by("id")
            .values_list("generation_id", "kind", "amount", "reserved_change", "created_at")
        ):
            entries[str(gid)].append((kind, amount, reserved))
            if kind in ("capture", "release"):
                settled_at[str(gid)] = at
        for g in generations:
            g["settled_at"] = settled_at.get(g["id"])
        spent: Counter[int] = Counter()
        for g in generations:
            if g["status"] == Generation.Status.SUCCEEDED:
                spent[g["owner_id"]] += g["cost_credits"]
        report = ChaosReport(
            label=self.label,
            seed=self.seed,
            planned=len(plan),
            outcomes=outcomes,
            accept_seconds=accept_seconds,
            settle_seconds=settled,
            killed_at=killed_at,
            fal_stats=self.fal.stats(),
            generations=generations,
            entries=dict(entries),
            broken=ledger.broken_accounts(),
            balances={
                a.user_id: (a.balance, a.reserved)
                for a in CreditAccount.objects.filter(user__in=[u for u, _ in self.users])
            },
            expected_balances={u.pk: CREDITS_PER_USER - spent[u.pk] for u, _ in self.users},
            worker_logs=[w.log()[-4000:] for w in workers],
            lock_events=[
                line
                for w in workers
                for line in w.log().splitlines()
                if "event=fal_dispatch_" in line or "event=fal_submit_refused_account" in line
            ],
            refused_while_locked=Counter(
                r.body.get("prompt", "")
                for r in self.fal.requests("submit")
                if r.status == 403 and isinstance(r.body, dict)
            ),
            fal_jobs={job.request_id for job in self.fal.jobs()},
            dispatch_paused_at_end=FalAccount.objects.filter(pk=1, dispatch_paused=True).exists(),
        )
        report.check_ledger = subprocess.run(
            [sys.executable, "manage.py", "check_ledger"],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "veoproject.settings",
                "DEBUG": "1",
                "DATABASE_URL": database_url(),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        return report


# --- The invariants ------------------------------------------------------------------------

KILLED_SUBMITS_AT_MOST = 2  # Q_WORKERS of the killed cluster: submits it may have had running


def verify(report: ChaosReport) -> list[str]:
    """Every broken invariant, as a sentence (empty: the run was exact)."""
    problems: list[str] = []
    gens = {g["id"]: g for g in report.generations}

    # The API: every create answered 201, replays and races gave one generation, a reused
    # key with another body was refused, and nothing else created a generation.
    expected_ids = set()
    for o in report.outcomes:
        p = o.planned
        if o.error and not o.ids:
            problems.append(f"request {p.index} ({p.mode}) failed: {o.error}")
            continue
        if any(s != 201 for s in o.statuses):
            problems.append(f"request {p.index} ({p.mode}) answered {o.statuses}: {o.error}")
        if len(set(o.ids)) != 1:
            problems.append(f"request {p.index} ({p.mode}) gave generations {o.ids}")
        expected_ids.update(o.ids)
        if p.mode == "reuse" and o.reuse_status != 422:
            problems.append(f"request {p.index}: key reused with another body -> {o.reuse_status}")
        if p.mode == "cancel" and o.cancel_status not in (200, 409):
            problems.append(f"request {p.index}: cancel answered {o.cancel_status}")
    if set(gens) != expected_ids:
        problems.append(
            f"{len(gens)} generations exist, the API answered {len(expected_ids)} ids "
            f"(extra: {sorted(set(gens) - expected_ids)[:5]})"
        )

    # Every generation ended, within the bounded wait.
    stuck = [g for g in gens.values() if g["status"] not in Generation.FINAL]
    if stuck or report.settle_seconds is None:
        problems.append(f"{len(stuck)} generations not final, e.g. {stuck[:3]}")

    # Money: exactly one hold, then exactly one capture (succeeded) or release.
    for gid, g in gens.items():
        cost = g["cost_credits"]
        got = report.entries.get(gid, [])
        if g["status"] == Generation.Status.SUCCEEDED:
            want = [("hold", 0, cost), ("capture", -cost, -cost)]
        elif g["status"] in (Generation.Status.FAILED, Generation.Status.CANCELED):
            want = [("hold", 0, cost), ("release", 0, -cost)]
        else:
            want = [("hold", 0, cost)]
        if got != want:
            problems.append(f"generation {gid} ({g['status']}): ledger {got}, expected {want}")
        if g["status"] == Generation.Status.SUCCEEDED and not (g["video"] and g["video_bytes"]):
            problems.append(f"generation {gid} succeeded without a stored video")
    # fal: one job per generation, except in a window we know of. Every POST that may
    # have made a job is counted in fal_submit_count (client retries, unknown outcomes);
    # only a submit in flight on the SIGKILLed cluster can leave an uncounted one.
    uncounted = report.uncounted_duplicates()
    if len(uncounted) > KILLED_SUBMITS_AT_MOST:
        problems.append(f"{len(uncounted)} uncounted duplicate fal jobs: {uncounted[:3]}")
    problems += _verify_forgeries(report)
    problems += _verify_lock(report)
    if report.broken:
        problems.append(f"broken accounts: {report.broken}")
    if report.check_ledger is None or report.check_ledger.returncode != 0:
        out = report.check_ledger and (report.check_ledger.stdout + report.check_ledger.stderr)
        problems.append(f"manage.py check_ledger failed: {out}")
    for user_id, expected in report.expected_balances.items():
        balance, reserved = report.balances[user_id]
        if (balance, reserved) != (expected, 0):
            problems.append(
                f"user {user_id}: balance {balance} reserved {reserved}, expected {expected} / 0"
            )
    return problems


LOCK_WORDS = ("locked", "balance", "billing", "top up", "exhausted")


def _verify_forgeries(report: ChaosReport) -> list[str]:
    """Every forged webhook refused (the ledger and final states above show that none moved
    anything); genuine ones still applied; no generation took an attacker's job or video."""
    problems = []
    wrong = [f for f in report.forgeries if f.answered != f.expected]
    if wrong:
        problems.append(f"{len(wrong)} forged webhooks not answered as expected: {wrong[:5]}")
    missing = set(FORGERIES) - {f.kind for f in report.forgeries}
    if missing:
        problems.append(f"forged webhook kinds never sent: {sorted(missing)}")
    if not report.controls or any(answer != 200 for _, answer in report.controls):
        problems.append(f"genuine webhooks to final generations answered {report.controls}")
    fal_host = report.fal_stats.get("host", "")
    for g in report.generations:
        url = g["fal_video_url"] or ""
        if FORGED_MARK in url or (
            g["status"] == Generation.Status.SUCCEEDED and urlsplit(url).netloc != fal_host
        ):
            problems.append(f"generation {g['id']} ({g['status']}) has the video URL {url!r}")
        if g["fal_request_id"] and g["fal_request_id"] not in report.fal_jobs:
            problems.append(
                f"generation {g['id']} follows {g['fal_request_id']!r}, a job fal never created"
            )
    return problems


def _verify_lock(report: ChaosReport) -> list[str]:
    """fal's account lock paused dispatch and cost nobody anything: what was accepted
    meanwhile waited (pending, its hold kept) and ended as any other generation, once the
    probe resumed dispatch."""
    w = report.lock
    if w is None or not w.seconds:
        return []
    problems = []
    if w.error or w.started is None:
        problems.append(f"the account lock did not run: {w.error or 'never started'}")
        return problems
    if w.paused_seen is None or w.pause_reason != FalAccount.PauseReason.ACCOUNT_LOCKED:
        problems.append(f"dispatch pause not seen while locked ({w.pause_reason or 'never'})")
    if w.resumed_seen is None or report.dispatch_paused_at_end:
        problems.append("dispatch did not resume after the unlock")
    if not report.fal_stats.get("counters", {}).get("submits_refused_locked"):
        problems.append("fal refused no submit while locked: the lock was not exercised")
    if not w.accepted:
        problems.append("no generation was accepted while locked")
    failed_then = {
        k: n for k, n in w.at_unlock.items() if k not in ("pending", "submitting", "canceled")
    }
    if failed_then:
        problems.append(f"generations accepted while locked were {failed_then} at the unlock")
    jobs = report.jobs_per_generation()
    for g in report.generations:
        message = (g["error_message"] or "").lower()
        if g["status"] == Generation.Status.FAILED and any(w_ in message for w_ in LOCK_WORDS):
            problems.append(f"generation {g['id']} failed for the lock: {g['error_message']!r}")
        if (
            report.refused_while_locked.get(g["prompt"])
            and g["status"] == Generation.Status.FAILED
            and not jobs[g["id"]]
        ):
            problems.append(
                f"generation {g['id']} was refused while locked and failed without a job on "
                f"fal ({g['error_code']}: {g['error_message']!r})"
            )
    return problems
