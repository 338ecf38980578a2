"""API throughput and latency under gunicorn + PostgreSQL, measured with locust.

    scripts/with-postgres .venv/bin/python bench/api_throughput.py [--seconds 30]
        [--clients 20] [--workers 4] [--rounds 1] [--redis] [--pool N] [--rate R]
        [--out bench/results/api.json]

Migrates the database named by DATABASE_URL (bench settings: the project plus the
ceiling view), creates one user + API token per client, starts gunicorn, then runs each
scenario of bench/locustfile.py headless, one after the other on the same server:
ceiling, create, list. Throttles and the in-flight cap are lifted through their
environment settings (API_CREATE_RATE="", API_READ_RATE="", MAX_IN_FLIGHT_PER_USER=0).
Prints a Markdown table (requests/s, p50, p99, failures) and the create/ceiling ratio.

--rounds N runs ceiling and create alternately N times before the list, so that on a
shared machine both see the same background load; the ratio is then total create
requests over total ceiling requests (same seconds each). --redis starts a redis-server
on loopback and sets REDIS_URL (the cache and the task broker on Redis, the production
deployment); --pool N sets DATABASE_POOL=N (psycopg's pool, no health-check query). Both
apply to the whole server, so every scenario pays the same settings.

--rate R offers at most R requests a second in all (each client R / clients, locust's
constant_throughput) instead of sending back to back: with clients in a closed loop at
saturation the mean latency is clients / throughput whatever the code does (Little's
law); under an offered load below saturation the latency is the request's own time plus
what queueing that load causes, the figure a user of a service that is not overloaded
sees. A scenario that cannot keep up falls back to back to back (its req/s says so).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCENARIOS = ["ceiling", "create", "list"]
PROJECT_PACKAGES = ("accounts/", "generations/", "notifications/", "veoproject/")

SETUP_USERS = """
import json, sys
import django
django.setup()
from accounts import ledger
from accounts.models import User
from accounts.tokens import create_token
tokens = []
for i in range({clients}):
    user, _ = User.objects.get_or_create(
        username=f"bench{{i}}", defaults={{"email": f"bench{{i}}@example.com"}}
    )
    ledger.grant(user=user, amount=100_000_000, reason="benchmark")
    tokens.append(create_token(user=user, name="bench")[1])
json.dump(tokens, sys.stdout)
"""


def python_speed(additions: int = 3_000_000, runs: int = 3) -> float:
    """Millions of Python loop additions a second on one core, the best of `runs`: a
    figure to tell two days' machines (their CPU) apart. It does not see contention from
    the host's other guests, which moved the ceiling by a quarter within one day while
    this figure stayed put (BENCHMARKS.md 1.5); only a run's own figures show that."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        total = 0
        for i in range(additions):
            total += i
        best = min(best, time.perf_counter() - started)
    return additions / best / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_env() -> dict[str, str]:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must name a PostgreSQL database (use scripts/with-postgres)")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
        "DEBUG": "0",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "API_CREATE_RATE": "",
        "API_READ_RATE": "",
        "MAX_IN_FLIGHT_PER_USER": "0",
        "FAL_SIMULATED": "1",  # accept-path benchmark: nothing is sent to fal
        "PYTHONPATH": str(ROOT),
    }


def run_locust(scenario: str, host: str, seconds: int, clients: int, env, workdir) -> dict:
    prefix = os.path.join(workdir, scenario)
    subprocess.run(
        [
            str(BIN / "locust"),
            "-f",
            str(ROOT / "bench" / "locustfile.py"),
            "--headless",
            "--only-summary",
            "--reset-stats",
            "-u",
            str(clients),
            "-r",
            str(clients),
            "-t",
            f"{seconds}s",
            "--host",
            host,
            "--tags",
            scenario,
            "--csv",
            prefix,
            "--loglevel",
            "WARNING",
        ],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with open(f"{prefix}_stats.csv") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    total = rows["Aggregated"]

    def number(name: str) -> float:  # "N/A" when no request finished (a short warm-up)
        try:
            return float(total[name])
        except ValueError:
            return 0.0

    return {
        "scenario": scenario,
        "requests": int(total["Request Count"]),
        "failures": int(total["Failure Count"]),
        "rps": number("Requests/s"),
        "p50_ms": number("50%"),
        "p99_ms": number("99%"),
        "avg_ms": number("Average Response Time"),
    }


class CpuMeter:
    """CPU seconds used by the web workers, PostgreSQL, Redis and locust: what a request
    costs the machine, which a shared, loaded machine distorts far less than requests/s.
    Each part is a process tree (live children plus those already reaped); locust is
    this script's child, measured by its rusage."""

    def __init__(self, roots: dict[str, int]) -> None:
        import psutil

        self.roots = {name: psutil.Process(pid) for name, pid in roots.items()}

    def read(self) -> dict[str, float]:
        import psutil

        used: dict[str, float] = {}
        for name, root in self.roots.items():
            total = 0.0
            for proc in [root, *root.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system + times.children_user + times.children_system
            used[name] = total
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        used["locust"] = children.ru_utime + children.ru_stime
        return used


def postmaster_pid(database_url: str) -> int | None:
    """The PostgreSQL server listening on DATABASE_URL's port on loopback (root only)."""
    import psutil

    port = urlsplit(database_url).port or 5432
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.status == "LISTEN" and conn.laddr.port == port and conn.pid:
                return conn.pid
    except psutil.AccessDenied:
        pass
    return None


def start_redis(workdir: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            sys.exit("redis-server did not come up")
        time.sleep(0.1)
    return server, f"redis://127.0.0.1:{port}/0"


def start_profiler(pid: int, seconds: int, workdir: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(max(seconds - 3, 1)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            os.path.join(workdir, "profile.txt"),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def print_profile(path: str, top: int = 45) -> None:
    """Where the gunicorn workers spend their time below DRF's dispatch: the inclusive
    share of samples per function (collapsed stacks from py-spy --format raw)."""
    inclusive: dict[str, int] = {}
    total = idle = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            frames = [
                fr.split(" (")[0] + " (" + fr.split(" (")[-1].split(":")[0] + ")"
                for fr in stack.split(";")
            ]
            total += int(count)
            names = [n for n in frames if n.startswith("APIView.dispatch")]
            if not names:
                idle += int(count)  # waiting for a connection, gunicorn itself
                continue
            below = frames[frames.index(names[0]) :]
            for name in dict.fromkeys(below):
                inclusive[name] = inclusive.get(name, 0) + int(count)
    print(f"\npy-spy: {total} samples of the gunicorn workers, {idle} outside DRF's dispatch")
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])
    for name, count in ranked[:top]:
        print(f"  {100 * count / total:5.1f}%  {name}")
    print("\nthe project's own functions (1 % or more):")
    for name, count in ranked:
        if name.split(" (")[-1].startswith(PROJECT_PACKAGES) and count >= total / 100:
            print(f"  {100 * count / total:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run ceiling and create alternately this many times (a shared machine)",
    )
    parser.add_argument(
        "--redis", action="store_true", help="REDIS_URL: cache and task broker on Redis"
    )
    parser.add_argument("--pool", type=int, default=0, help="DATABASE_POOL (0: no pool)")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="offer at most this many requests/s in all (0: back to back, saturating)",
    )
    parser.add_argument("--out", help="write the results as JSON here too")
    parser.add_argument(
        "--profile",
        choices=SCENARIOS,
        help="also sample the gunicorn workers with py-spy during this scenario and print "
        "the functions where they spend their time (py-spy must be installed)",
    )
    args = parser.parse_args()
    env = bench_env()
    workdir = tempfile.mkdtemp(prefix="veo-bench-")
    redis = None
    if args.redis:
        redis, env["REDIS_URL"] = start_redis(workdir)
    if args.pool:
        env["DATABASE_POOL"] = str(args.pool)
    try:
        run(args, env, workdir, redis_pid=redis.pid if redis else None)
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)


def run(args: argparse.Namespace, env: dict[str, str], workdir: str, redis_pid: int | None) -> None:
    python = sys.executable
    manage = [python, str(ROOT / "manage.py")]
    # The project's migrations first, then the bench table (an app without migrations).
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    subprocess.run([*manage, "migrate", "--run-syncdb", "-v", "0"], env=env, check=True)
    setup = subprocess.run(
        [python, "-c", SETUP_USERS.format(clients=args.clients)],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    if setup.returncode:
        sys.exit(f"creating the users failed:\n{setup.stderr}")
    tokens = setup.stdout
    tokens_file = os.path.join(workdir, "tokens.json")
    Path(tokens_file).write_text(tokens)
    env["BENCH_TOKENS"] = tokens_file

    speed_before = python_speed()
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    log = open(os.path.join(workdir, "gunicorn.log"), "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "veoproject.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "sync",
            "--keep-alive",
            "5",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{host}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit(f"gunicorn did not come up; see {log.name}")
            time.sleep(0.2)
        # Warm every worker up (imports, connections) before measuring.
        run_locust("ceiling", host, 5, args.clients, env, workdir)
        roots = {"web": server.pid}
        database = postmaster_pid(env["DATABASE_URL"])
        if database is not None:
            roots["postgres"] = database
        if redis_pid is not None:
            roots["redis"] = redis_pid
        meter = CpuMeter(roots)
        measured_env = dict(env)
        if args.rate:
            measured_env["BENCH_RATE_PER_CLIENT"] = str(args.rate / args.clients)
        results = []
        order = ["ceiling", "create"] * args.rounds + ["list"]
        for scenario in order:
            profiler = None
            if scenario == args.profile and not any(r["scenario"] == scenario for r in results):
                profiler = start_profiler(server.pid, args.seconds, workdir)
            before = meter.read()
            result = run_locust(scenario, host, args.seconds, args.clients, measured_env, workdir)
            after = meter.read()
            requests = max(result["requests"], 1)
            result["cpu_ms"] = {
                name: round(1000 * (after[name] - before[name]) / requests, 2) for name in after
            }
            results.append(result)
            if profiler is not None:
                profiler.wait(timeout=60)
                print_profile(os.path.join(workdir, "profile.txt"))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    speed = (speed_before, python_speed())

    print(
        f"\n{args.clients} clients, {args.seconds} s per scenario, "
        f"gunicorn {args.workers} sync workers, {args.rounds} round(s), "
        f"REDIS_URL {'set' if args.redis else 'unset'}, DATABASE_POOL={args.pool}, "
        f"LOCAL_CACHE_SECONDS={env.get('LOCAL_CACHE_SECONDS', 'default')}, "
        + (f"offered load {args.rate:g} req/s" if args.rate else "back to back (saturating)")
    )
    print(
        f"machine: {speed[0]:.1f} / {speed[1]:.1f} million Python loop additions a second "
        "on one core, before / after the run (python_speed)"
    )
    print("| scenario | requests | failures | req/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    names = {
        "ceiling": "POST /api/bench/insert/ (ceiling)",
        "create": "POST /api/v1/generations/",
        "list": "GET /api/v1/generations/",
    }
    for r in results:
        print(
            f"| {names[r['scenario']]} | {r['requests']} | {r['failures']} | "
            f"{r['rps']:.0f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} |"
        )
    parts = list(results[0]["cpu_ms"])
    print(
        "\nCPU ms per request (whole scenario incl. its 1 s ramp-up, over the requests "
        "counted after it):"
    )
    print(f"| scenario | {' | '.join(parts)} | all |")
    print(f"|---|{'---:|' * (len(parts) + 1)}")
    for r in results:
        cpu = r["cpu_ms"]
        print(
            f"| {r['scenario']} | {' | '.join(f'{cpu[p]:.2f}' for p in parts)} | "
            f"{sum(cpu.values()):.2f} |"
        )
    total = {
        name: sum(r["requests"] for r in results if r["scenario"] == name) for name in SCENARIOS
    }
    print(
        f"\ncreate / ceiling = {total['create'] / total['ceiling']:.2f}; "
        f"list / ceiling = {total['list'] * args.rounds / total['ceiling']:.2f}"
    )
    for name in ("ceiling", "create"):
        p99 = [r["p99_ms"] for r in results if r["scenario"] == name]
        print(f"{name} p99 by round (ms): {', '.join(f'{v:.0f}' for v in p99)}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps({"args": vars(args), "python_speed": speed, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
