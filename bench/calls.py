"""Python function calls per request, in process: the ceiling and create, counted.

    scripts/with-postgres .venv/bin/python bench/calls.py [--requests 300] [--redis]
        [--prompt-chars 52]

A shared machine moves a run's throughput and CPU per request by tens of percent; the
number of Python calls a request makes does not move. This counts them with cProfile
over `--requests` requests of each scenario, through the Django test client (the whole
middleware stack and DRF, without gunicorn and locust), on the database DATABASE_URL
names, with the benchmark's settings (bench/settings_bench.py). `--redis` starts a
redis-server on loopback (the cache and the task broker on Redis, as api_throughput.py
--redis). `--prompt-chars N` pads the create's prompt to N characters (real prompts are
longer than the benchmark's 52). To compare two versions, run it in each tree (a
`git worktree` of the older commit, this file copied in) on the same kind of database.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_throughput import bench_env, start_redis  # noqa: E402

FILLER = " Soft morning light, a slow dolly shot along wet cobblestones, neon in the puddles."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--redis", action="store_true", help="REDIS_URL on a local server")
    parser.add_argument("--prompt-chars", type=int, default=0, help="pad the prompt to N")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="veo-calls-")
    redis = None
    try:
        os.environ.update(bench_env())
        if args.redis:
            redis, os.environ["REDIS_URL"] = start_redis(workdir)
        count(args)
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def count(args: argparse.Namespace) -> None:
    import django

    django.setup()
    import logging

    from django.core.management import call_command
    from django.test import Client

    from accounts import ledger
    from accounts.models import User
    from accounts.tokens import create_token

    # The accept's log line is written, as in production, to nowhere.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    call_command("migrate", verbosity=0)
    call_command("migrate", "--run-syncdb", verbosity=0)
    user, _ = User.objects.get_or_create(username="calls", defaults={"email": "c@example.com"})
    ledger.grant(user=user, amount=100_000_000, reason="benchmark")
    token = create_token(user=user, name="calls")[1]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")

    def ceiling() -> None:
        response = client.post("/api/bench/insert/", data="{}", content_type="application/json")
        assert response.status_code == 201, response.content[:300]

    def create() -> None:
        key = uuid.uuid4().hex
        prompt = f"A paper boat drifting down a rainy street ({key[:8]})"
        if args.prompt_chars > len(prompt):
            padding = FILLER * (args.prompt_chars // len(FILLER) + 1)
            prompt = (prompt + padding)[: args.prompt_chars]
        body = {
            "prompt": prompt,
            "image_url": "https://images.example.com/boat.jpg",
            "aspect_ratio": "16:9",
            "duration": "4s",
            "resolution": "720p",
            "generate_audio": False,
        }
        response = client.post(
            "/api/v1/generations/",
            data=json.dumps(body),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=key,
        )
        assert response.status_code == 201, response.content[:300]

    results = {}
    for name, request in (("ceiling", ceiling), ("create", create)):
        for _ in range(50):  # warm: caches, compiled statements, templates
            request()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.requests):
            request()
        profile.disable()
        results[name] = pstats.Stats(profile).total_calls / args.requests  # type: ignore[attr-defined]
    print(f"{args.requests} requests each, a prompt of {max(args.prompt_chars, 52)} characters")
    print("| scenario | Python calls per request |\n|---|---:|")
    for name, calls in results.items():
        print(f"| {name} | {calls:,.0f} |")
    print(f"\ncreate / ceiling = {results['create'] / results['ceiling']:.2f} (in calls)")


if __name__ == "__main__":
    main()
