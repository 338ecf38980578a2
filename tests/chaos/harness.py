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
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.apps import apps
from django.db import close_old_connections

from accounts import ledger
from accounts.models import CreditAccount, LedgerEntry
from accounts.tokens import create_token
from generations.models import Generation
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


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


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
        ]  # fmt: skip
        return "\n".join(lines)


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
        killed_at = None
        try:
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
        finally:
            for client in clients:
                client.close()
        accept_seconds = time.monotonic() - t0
        settled = self._settle()
        return self._report(plan, outcomes, accept_seconds, settled, killed_at, workers)

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
                "fal_video_url", "finish_failures",
            )
        )  # fmt: skip
        for g in generations:
            g["id"] = str(g["id"])
        entries: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        for gid, kind, amount, reserved in (
            LedgerEntry.objects.exclude(generation=None)
            .order_by("id")
            .values_list("generation_id", "kind", "amount", "reserved_change")
        ):
            entries[str(gid)].append((kind, amount, reserved))
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
