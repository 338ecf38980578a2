"""In-flight scale: many generations accepted at once, fal jobs of 10 s, real workers.

    scripts/with-postgres .venv/bin/python bench/inflight.py [--count 1000]
        [--run-seconds 10] [--clusters 1] [--q-workers 2] [--webhooks] [--out FILE]

Starts the fake fal as a process (`python -m tests.fakefal`, jobs of --run-seconds,
--max-concurrent = --count so nothing queues at fal), `--clusters` qcluster processes
with Q_WORKERS=--q-workers each (ORM broker on the same PostgreSQL), and with
--webhooks a gunicorn that receives fal's signed webhooks (PUBLIC_BASE_URL). Then it
accepts --count generations through `generations.services.accept` as fast as it can
(10 users), and waits until every one is final.

Reports: accept rate; time from the last accept until all succeeded; dispatch latency
(accept -> fal's submit request, from the fake's request log); completion latency
(webhook delivered -> status succeeded with --webhooks, else fal job finished -> status
succeeded); calls made to fal (submit/status/result/files); the RSS of the worker
processes (peak of the sum over each cluster's process tree, and at start and end).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
SECRET_KEY = "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PARAMS = {
    "image_url": "https://images.example.com/boat.jpg",
    "aspect_ratio": "16:9",
    "duration": "8s",
    "resolution": "720p",
    "generate_audio": True,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def seconds_summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 50):.2f} s, p99 {percentile(values, 99):.2f} s, "
        f"max {max(values):.2f} s (n={len(values)})"
    )


class RssSampler(threading.Thread):
    """Samples the RSS of each cluster's whole process tree every `interval` seconds."""

    def __init__(self, pids: list[int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.samples: list[tuple[float, int, int]] = []  # (time, total bytes, processes)
        self.peak_process = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            total = count = 0
            for pid in self.pids:
                try:
                    root = psutil.Process(pid)
                    for proc in [root, *root.children(recursive=True)]:
                        rss = proc.memory_info().rss
                        total += rss
                        count += 1
                        self.peak_process = max(self.peak_process, rss)
                except psutil.NoSuchProcess:
                    continue
            self.samples.append((time.time(), total, count))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def total_at(self, when: float) -> int:
        before = [s for s in self.samples if s[0] <= when]
        return (before[-1] if before else self.samples[0])[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--run-seconds", type=float, default=10.0)
    parser.add_argument("--clusters", type=int, default=1)
    parser.add_argument("--q-workers", type=int, default=2)
    parser.add_argument("--webhooks", action="store_true")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must name a PostgreSQL database (use scripts/with-postgres)")

    from tests.fakefal.process import FakeFalProcess

    fal = FakeFalProcess(
        "--run-seconds", str(args.run_seconds), "--queue-seconds", "0",
        "--max-concurrent", str(max(args.count, 2)),
        "--config", json.dumps({"max_records": 50 * args.count}),
    ).start()  # fmt: skip
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "MAX_IN_FLIGHT_PER_USER": "0",
        "FAL_KEY": "bench-key:bench-secret",
        "FAL_QUEUE_RUN_HOST": fal.host,
        "SSL_CERT_FILE": fal.ca_pem_path,
        "FAL_WEBHOOK_JWKS_URL": f"{fal.base_url}/.well-known/jwks.json",
        "FAL_MEDIA_HOSTS": "127.0.0.1",  # the fake serves its videos itself
        "PRIVATE_URLS_ALLOWED": "1",
        "Q_WORKERS": str(args.q_workers),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    processes: list[subprocess.Popen] = []
    logdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"veo-inflight-{os.getpid()}"
    logdir.mkdir(parents=True, exist_ok=True)

    def spawn(name: str, cmd: list[str], **kw) -> subprocess.Popen:
        log = open(logdir / f"{name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, **kw)
        processes.append(proc)
        return proc

    manage = [sys.executable, str(ROOT / "manage.py")]
    # The project's migrations first, then the bench table (an app without migrations).
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    subprocess.run([*manage, "migrate", "--run-syncdb", "-v", "0"], env=env, check=True)
    if args.webhooks:
        port = free_port()
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
        spawn(
            "gunicorn",
            [str(BIN / "gunicorn"), "veoproject.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--log-level", "warning"],
        )  # fmt: skip
    os.environ.update(env)  # this process accepts, with the same settings
    import django

    django.setup()
    from django.db.models import Count

    from accounts import ledger
    from accounts.models import User
    from generations import services
    from generations.models import Generation

    clusters = [
        spawn(f"qcluster-{i}", [*manage, "qcluster"], start_new_session=True)
        for i in range(args.clusters)
    ]
    time.sleep(3)  # let the clusters start (forks, connections) before the burst
    sampler = RssSampler([c.pid for c in clusters])
    sampler.start()
    time.sleep(1)
    try:
        users = []
        for i in range(10):
            user, _ = User.objects.get_or_create(
                username=f"inflight{i}", defaults={"email": f"inflight{i}@example.com"}
            )
            ledger.grant(user=user, amount=10_000_000, reason="benchmark")
            users.append(user)
        t_first = time.time()
        for i in range(args.count):
            params = {**PARAMS, "prompt": f"In-flight benchmark shot {i}: a paper boat"}
            services.accept(user=users[i % len(users)], params=params)
        t_last = time.time()
        print(
            f"accepted {args.count} in {t_last - t_first:.1f} s "
            f"({args.count / (t_last - t_first):.0f}/s)",
            flush=True,
        )
        in_flight = Generation.objects.in_flight()
        deadline = time.monotonic() + args.timeout
        while in_flight.exists() and time.monotonic() < deadline:
            time.sleep(0.25)
        t_done = time.time()
        time.sleep(2)
        memory_end = sampler.samples[-1][1]
    finally:
        sampler.stop()
        for proc in clusters:
            if proc.poll() is None:
                proc.terminate()
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
    gens = list(Generation.objects.values("prompt", "created_at", "completed_at", "status"))
    control = fal.control
    submits = control.requests("submit", limit=100 * args.count)
    jobs = {j["request_id"]: j for j in control.jobs()}
    webhooks = control.webhooks()
    counters = control.stats()["counters"]
    fal.stop()

    first_submit: dict[str, float] = {}
    submit_time: dict[str, float] = {}
    for record in submits:
        prompt = (record.get("body") or {}).get("prompt")
        first_submit.setdefault(prompt, record["time"])
        if record.get("request_id"):
            submit_time[record["request_id"]] = record["time"]
    by_prompt = {g["prompt"]: g for g in gens}
    dispatch = [
        first_submit[p] - g["created_at"].timestamp()
        for p, g in by_prompt.items()
        if p in first_submit
    ]
    prompt_of_request = {}
    for record in submits:
        if record.get("request_id"):
            prompt_of_request[record["request_id"]] = (record.get("body") or {}).get("prompt")
    completion = []
    if args.webhooks:
        delivered: dict[str, float] = {}
        for hook in webhooks:
            if hook.get("status") and 200 <= int(hook["status"]) < 300:
                delivered.setdefault(hook["request_id"], hook["time"])
        for request_id, at in delivered.items():
            g = by_prompt.get(prompt_of_request.get(request_id))
            if g and g["completed_at"]:
                completion.append(g["completed_at"].timestamp() - at)
    else:
        for request_id, job in jobs.items():
            g = by_prompt.get(prompt_of_request.get(request_id))
            if g and g["completed_at"] and job.get("ended_after") is not None:
                finished = submit_time[request_id] + job["ended_after"]
                completion.append(g["completed_at"].timestamp() - finished)

    memory = [s[1] for s in sampler.samples]
    mib = 1024 * 1024
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "outcomes": outcomes,
        "accept_seconds": round(t_last - t_first, 2),
        "all_done_after_last_accept_s": round(t_done - t_last, 2),
        "dispatch_latency": seconds_summary(dispatch),
        "completion_latency": seconds_summary(completion),
        "fal_calls": {k: counters.get(k, 0) for k in ("submit", "status", "result", "files")},
        "rss_mib": {
            "start": round(memory[0] / mib, 1),
            "peak": round(max(memory) / mib, 1),
            "end": round(memory_end / mib, 1),
            "peak_single_process": round(sampler.peak_process / mib, 1),
            "processes": sampler.samples[-1][2] if sampler.samples else 0,
        },
        "logs": str(logdir),
    }
    mode = "webhooks" if args.webhooks else "polling"
    print(
        f"\n{args.count} generations, fal jobs of {args.run_seconds:g} s, {args.clusters} "
        f"qcluster x Q_WORKERS={args.q_workers}, completion by {mode}"
    )
    print(f"  outcomes: {outcomes}")
    print(f"  accept: {report['accept_seconds']} s for {args.count}")
    print(f"  all final {report['all_done_after_last_accept_s']} s after the last accept")
    print(f"  dispatch latency (accept -> fal submit): {report['dispatch_latency']}")
    label = "webhook delivered" if args.webhooks else "fal job finished"
    print(f"  completion latency ({label} -> succeeded): {report['completion_latency']}")
    print(f"  calls to fal: {report['fal_calls']}")
    print(f"  worker RSS (MiB, whole cluster tree): {report['rss_mib']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
