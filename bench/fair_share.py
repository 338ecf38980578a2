"""Fair share of fal's slots: one user's burst against light users, real workers.

    scripts/with-postgres .venv/bin/python bench/fair_share.py [--policy fair|fifo]
        [--slots 4] [--heavy 100] [--light-users 10] [--light-each 2] [--run-seconds 5]
        [--light-after 5] [--light-interval 5] [--clusters 2] [--q-workers 2] [--out FILE]

FAL_MAX_CONCURRENCY=--slots and FAL_QUEUE_POLICY=--policy for this process (which
accepts) and `--clusters` qcluster processes (Q_WORKERS=--q-workers each, ORM broker on
the same PostgreSQL). The fake fal runs as a process with jobs of --run-seconds and room
for far more jobs at once than --slots (so its own count of running jobs proves our
limit, not its own). One user accepts --heavy generations at once; --light-after seconds
later the first of --light-users light users accepts --light-each, the next one
--light-interval seconds after that, and so on (0: all at once). Every generation is an
8 s video (the same weight in the fair order).

Reports, per group of users: the wait from accept to submit (the fake's request log) and
to the job's start at fal; the fake's highest count of jobs running at once; outcomes.
Run it once per policy (each on a fresh database); `--policy fifo` is the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PARAMS = {
    "image_url": "https://images.example.com/boat.jpg",
    "aspect_ratio": "16:9",
    "duration": "8s",
    "resolution": "720p",
    "generate_audio": False,
}


def summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 2),
        "max_s": round(max(values), 2),
        "min_s": round(min(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", choices=["fair", "fifo"], default="fair")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--heavy", type=int, default=100)
    parser.add_argument("--light-users", type=int, default=10)
    parser.add_argument("--light-each", type=int, default=2)
    parser.add_argument("--run-seconds", type=float, default=5.0)
    parser.add_argument("--light-after", type=float, default=5.0)
    parser.add_argument("--light-interval", type=float, default=5.0)
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--q-workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must name a PostgreSQL database (use scripts/with-postgres)")

    from tests.fakefal.process import FakeFalProcess

    total = args.heavy + args.light_users * args.light_each
    fal = FakeFalProcess(
        "--run-seconds", str(args.run_seconds), "--queue-seconds", "0",
        "--max-concurrent", str(max(total, 2)),
        "--config", json.dumps({"max_records": 50 * total}),
    ).start()  # fmt: skip
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "MAX_IN_FLIGHT_PER_USER": "0",
        "FAL_MAX_CONCURRENCY": str(args.slots),
        "FAL_QUEUE_POLICY": args.policy,
        "FAL_KEY": "bench-key:bench-secret",
        "FAL_QUEUE_RUN_HOST": fal.host,
        "SSL_CERT_FILE": fal.ca_pem_path,
        "FAL_WEBHOOK_JWKS_URL": f"{fal.base_url}/.well-known/jwks.json",
        "FAL_MEDIA_HOSTS": "127.0.0.1",  # the fake serves its videos itself
        "PRIVATE_URLS_ALLOWED": "1",
        "IMAGE_URL_CHECK": "0",  # the requests name an image on a host that does not exist
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "Q_WORKERS": str(args.q_workers),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    processes: list[subprocess.Popen] = []
    logdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"veo-fair-share-{os.getpid()}"
    logdir.mkdir(parents=True, exist_ok=True)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    os.environ.update(env)  # this process accepts, with the same settings
    import django

    django.setup()
    from django.db.models import Count

    from accounts import ledger
    from accounts.models import User
    from generations import services
    from generations.models import Generation

    for i in range(args.clusters):
        log = open(logdir / f"qcluster-{i}.log", "wb")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [*manage, "qcluster"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    time.sleep(3)  # let the clusters start (forks, connections) before the burst

    def user_named(name: str) -> User:
        user, _ = User.objects.get_or_create(
            username=name, defaults={"email": f"{name}@example.com"}
        )
        ledger.grant(user=user, amount=10_000_000, reason="benchmark")
        return user

    heavy = user_named("fairshare-heavy")
    lights = [user_named(f"fairshare-light{i}") for i in range(args.light_users)]
    group: dict[str, str] = {}  # prompt -> "heavy" | "light"
    try:
        t0 = time.time()
        for i in range(args.heavy):
            prompt = f"Fair share benchmark, heavy shot {i}"
            services.accept(user=heavy, params={**PARAMS, "prompt": prompt})
            group[prompt] = "heavy"
        print(f"heavy user: {args.heavy} accepted in {time.time() - t0:.1f} s", flush=True)
        time.sleep(max(0.0, t0 + args.light_after - time.time()))
        for n, user in enumerate(lights):
            arrive = t0 + args.light_after + n * args.light_interval
            time.sleep(max(0.0, arrive - time.time()))
            for j in range(args.light_each):
                prompt = f"Fair share benchmark, light user {n} shot {j}"
                services.accept(user=user, params={**PARAMS, "prompt": prompt})
                group[prompt] = "light"
        print(f"light users: {args.light_users} x {args.light_each} accepted", flush=True)
        in_flight = Generation.objects.in_flight()
        deadline = time.monotonic() + args.timeout
        while in_flight.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        t_done = time.time()
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    outcomes = dict(
        Generation.objects.values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    created = {
        prompt: at.timestamp()
        for prompt, at in Generation.objects.values_list("prompt", "created_at")
    }
    control = fal.control
    submits = control.requests("submit", limit=100 * total)
    jobs = {job["request_id"]: job for job in control.jobs()}
    stats = control.stats()
    fal.stop()

    first_submit: dict[str, float] = {}
    first_start: dict[str, float] = {}
    for record in submits:
        sent = str((record.get("body") or {}).get("prompt"))
        first_submit.setdefault(sent, record["time"])
        job = jobs.get(record.get("request_id") or "")
        if job and job.get("started_after") is not None:
            first_start.setdefault(sent, record["time"] + job["started_after"])
    waits: dict[str, dict[str, list[float]]] = {
        name: {"submit": [], "start": []} for name in ("heavy", "light")
    }
    for prompt, name in group.items():
        if prompt in first_submit:
            waits[name]["submit"].append(first_submit[prompt] - created[prompt])
        if prompt in first_start:
            waits[name]["start"].append(first_start[prompt] - created[prompt])
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "outcomes": outcomes,
        "all_final_after_first_accept_s": round(t_done - t0, 1),
        "fal_max_running": stats["jobs"]["max_running"],
        "fal_jobs": stats["jobs"]["total"],
        "light_wait_accept_to_submit": summary(waits["light"]["submit"]),
        "light_wait_accept_to_fal_start": summary(waits["light"]["start"]),
        "heavy_wait_accept_to_submit": summary(waits["heavy"]["submit"]),
        "logs": str(logdir),
    }
    bound = 2 * args.run_seconds
    light = report["light_wait_accept_to_submit"]
    print(
        f"\npolicy={args.policy}, {args.slots} slots, jobs of {args.run_seconds:g} s, "
        f"{args.clusters} qcluster x Q_WORKERS={args.q_workers}; heavy {args.heavy}, then "
        f"{args.light_users} light users x {args.light_each} from +{args.light_after:g} s, "
        f"one every {args.light_interval:g} s"
    )
    print(f"  outcomes: {outcomes} (all final {report['all_final_after_first_accept_s']} s)")
    print(f"  fal's most jobs running at once: {report['fal_max_running']} (limit {args.slots})")
    print(f"  light users, accept -> submit: {light}")
    print(f"  light users, accept -> start at fal: {report['light_wait_accept_to_fal_start']}")
    print(f"  heavy user, accept -> submit: {report['heavy_wait_accept_to_submit']}")
    met = (
        light.get("median_s", float("inf")) <= bound
        and report["fal_max_running"] <= args.slots
        and set(outcomes) == {"succeeded"}
    )
    print(f"  bound (light median <= {bound:g} s, fal <= {args.slots}, all done): {met}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
