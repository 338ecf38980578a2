"""locust scenarios for bench/api_throughput.py (run one at a time with --tags).

* ceiling: POST /api/bench/insert/  (token auth + DRF + one INSERT: the stack's ceiling)
* create:  POST /api/v1/generations/ (validate, quote, hold, insert, enqueue)
* list:    GET  /api/v1/generations/ (a page of 20 of the user's generations)

Each simulated client is one user with its own API token (BENCH_TOKENS: a JSON file
with a list of tokens) and sends requests back to back (no think time), or, when
BENCH_RATE_PER_CLIENT is set (api_throughput.py --rate), at that rate as a Poisson
process: independent users, an offered load below saturation.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid

from locust import HttpUser, constant, tag, task

TOKENS = json.loads(open(os.environ["BENCH_TOKENS"]).read())  # noqa: SIM115
_next_token = itertools.count()
RATE_PER_CLIENT = float(os.environ.get("BENCH_RATE_PER_CLIENT") or 0)


def poisson_arrivals(rate: float):
    """A wait_time that starts each request at the next arrival of a Poisson process of
    `rate` a second (exponential gaps), however long the requests take, unless the client
    is behind (then at once, and the schedule starts again from now). Clients spawned at
    the same instant with a fixed pace (locust's constant_throughput) send in bursts,
    which measures their queueing, not the service's."""

    def wait_time(user: ApiClient) -> float:
        now = time.monotonic()
        arrival = max((user.next_arrival or now) + random.expovariate(rate), now)
        user.next_arrival = arrival
        return arrival - now

    return wait_time


class ApiClient(HttpUser):
    next_arrival: float | None = None  # poisson_arrivals: when the next request starts
    wait_time = poisson_arrivals(RATE_PER_CLIENT) if RATE_PER_CLIENT else constant(0)

    def on_start(self) -> None:
        token = TOKENS[next(_next_token) % len(TOKENS)]
        self.client.headers["Authorization"] = f"Bearer {token}"

    @tag("ceiling")
    @task
    def ceiling(self) -> None:
        self.client.post("/api/bench/insert/", json={}, name="POST /api/bench/insert/")

    @tag("create")
    @task
    def create(self) -> None:
        key = uuid.uuid4().hex
        body = {
            "prompt": f"A paper boat drifting down a rainy street ({key[:8]})",
            "image_url": "https://images.example.com/boat.jpg",
            "aspect_ratio": "16:9",
            "duration": "4s",
            "resolution": "720p",
            "generate_audio": False,
        }
        self.client.post(
            "/api/v1/generations/",
            json=body,
            headers={"Idempotency-Key": key},
            name="POST /api/v1/generations/",
        )

    @tag("list")
    @task
    def list(self) -> None:
        self.client.get("/api/v1/generations/", name="GET /api/v1/generations/")
