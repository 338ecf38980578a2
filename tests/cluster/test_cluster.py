"""A cluster on one host, as production runs it: PostgreSQL (the test database), Redis (cache
and broker), S3 (moto on loopback, `STORAGE=s3`), the fake fal with webhooks, two gunicorn
processes of two sync workers each and two `qcluster` processes, all with `DEBUG=0` and the
Procfile's metrics setup (one PROMETHEUS_MULTIPROC_DIR). Twenty users send 200 generations
through both web processes (API tokens, an Idempotency-Key each, a retry on the other web
process when one does not answer); midway one gunicorn master is SIGKILLed with its workers
(the one fal's webhooks go to), and one qcluster with its workers, then both are restarted.
At the end:

* every generation is final, one per request (no duplicate from the retries), succeeded;
  each video is in the bucket (HEAD: its size is the one recorded);
* `check_ledger` exits 0; each generation has one hold and one capture or release; every
  balance is its grants minus the prices captured, nothing reserved;
* `/metrics` on both web processes reports the same state, equal to the database (see
  `check_metrics` for what agrees exactly, and why).

Run: `make test-cluster` (PostgreSQL; needs redis-server). About two minutes here.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.apps import apps
from django.db import connection
from django.db.models import Sum
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import CreditAccount, LedgerEntry
from accounts.tokens import create_token
from generations.models import Generation
from generations.schedules import ensure_schedules
from tests.cluster.processes import Gunicorn, QCluster
from tests.e2e.fixtures import REPO_ROOT, database_url
from tests.factories import REQUEST_BODY, UserFactory
from tests.fakefal.fixtures import fal_client_env
from tests.s3.conftest import BUCKET, CREDENTIALS, REGION

pytestmark = pytest.mark.cluster  # its own phase of `make test` (PostgreSQL, Redis, S3)

GENERATIONS = 200
USERS = 20
CLIENT_THREADS = 12
THINK_SECONDS = 2.0  # a client waits up to this long before each request: ~35 s of accepts
GRANT = 100_000
WEB_WORKERS = 2
Q_WORKERS = 2
METRICS_TOKEN = "cluster-metrics-token"
REQUEST_DEADLINE = 60.0  # one planned request retries (other web process) until this
SETTLE_DEADLINE = 150.0  # every generation final this long after the last accept
DOWN_SECONDS = 3.0  # how long the killed processes stay down
# The fake renders in about a second (0.3 s queued, 0.7 s running), for every job at once.
FAKE_FAL = {"queue_seconds": 0.3, "run_seconds": 0.7, "max_concurrent": 200}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sent:
    """One planned create request, as the client saw it."""

    index: int
    user: int
    key: str
    ids: set[str] = field(default_factory=set)
    statuses: list[int] = field(default_factory=list)  # every answer received
    transport_errors: int = 0  # sent, no answer (the web process died, or refused it)
    error: str = ""


@dataclass
class Cluster:
    webs: list[Gunicorn]
    workers: list[QCluster]
    metrics_dir: Path

    def all(self) -> list[Gunicorn | QCluster]:
        return [*self.webs, *self.workers]


@pytest.fixture
def cluster(
    transactional_db, redis_server, moto_s3, fake_fal_factory, tmp_path
) -> Iterator[tuple[Cluster, object]]:
    if connection.vendor != "postgresql":
        pytest.skip("the cluster test runs on PostgreSQL (make test-cluster)")
    # The transactional flush removed the minutely sweep schedule: restore it, as migrate
    # does in production (it restarts work a killed cluster left behind).
    ensure_schedules(sender=None, app_config=apps.get_app_config("generations"))
    fal = fake_fal_factory(**FAKE_FAL)
    metrics_dir = tmp_path / "prometheus"
    ports = [free_port(), free_port()]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "veoproject.settings",
        "PYTHONPATH": str(REPO_ROOT),
        "DEBUG": "0",
        "SECRET_KEY": "cluster-test-secret-key-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_server.url,
        "STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_REGION_NAME": REGION,
        "AWS_S3_ENDPOINT_URL": moto_s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "FAL_KEY": "cluster-key-id:cluster-key-secret",
        **fal_client_env(fal.host, fal.ca_pem_path),
        "FAL_WEBHOOK_JWKS_URL": fal.jwks_url,
        "FAL_WEBHOOK_USER_ID": fal.config.user_id,
        "FAL_MEDIA_HOSTS": "127.0.0.1,localhost",
        "PRIVATE_URLS_ALLOWED": "1",  # the fake fal and moto live on 127.0.0.1
        "IMAGE_URL_CHECK": "0",  # requests name images on hosts that do not exist
        # fal's webhooks go to the first web process: the one killed midway.
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports[0]}",
        "API_CREATE_RATE": "",
        "API_READ_RATE": "",
        "MAX_IN_FLIGHT_PER_USER": "0",
        "METRICS_TOKEN": METRICS_TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "Q_WORKERS": str(Q_WORKERS),
        "LOG_LEVEL": "INFO",
    }
    webs = [
        Gunicorn(f"web{i}", env, tmp_path, port=port, workers=WEB_WORKERS)
        for i, port in enumerate(ports)
    ]
    # django-q2 says "ready for work" at INFO only (tests/cluster/processes.py waits for it).
    worker_env = {**env, "LOG_LEVEL_TASKS": "INFO"}
    workers = [QCluster(f"worker{i}", worker_env, tmp_path) for i in range(2)]
    running = Cluster(webs=webs, workers=workers, metrics_dir=metrics_dir)
    try:
        for process in running.all():
            process.start()
        for process in running.all():
            process.wait_ready()
        yield running, fal
    finally:
        for process in running.all():
            process.stop()
        moto_s3.empty()


def send(sent: Sent, secret: str, webs: list[Gunicorn], rng: random.Random) -> Sent:
    """POST one generation, first to the web process its index names; on no answer or a
    5xx, again (same Idempotency-Key) to the other one, until a 201 or the deadline."""
    body = {
        **REQUEST_BODY,
        "prompt": f"Cluster shot {sent.index}: a lighthouse at dusk, waves breaking",
        "duration": rng.choice(["4s", "6s", "8s"]),
        "resolution": rng.choice(["720p", "1080p"]),
    }
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": sent.key}
    time.sleep(rng.random() * THINK_SECONDS)
    deadline = time.monotonic() + REQUEST_DEADLINE
    attempt = 0
    while time.monotonic() < deadline:
        web = webs[(sent.index + attempt) % len(webs)]
        attempt += 1
        try:
            response = httpx.post(
                f"{web.url}/api/v1/generations/", json=body, headers=headers, timeout=30
            )
        except httpx.TransportError:
            sent.transport_errors += 1
            time.sleep(0.2)
            continue
        sent.statuses.append(response.status_code)
        if response.status_code == 201:
            sent.ids.add(response.json()["id"])
            return sent
        if response.status_code < 500:
            sent.error = response.text[:300]
            return sent
        time.sleep(0.2)
    sent.error = sent.error or "no 201 before the deadline"
    return sent


def scrape(web: Gunicorn) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(
        f"{web.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text[:500]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def test_cluster_on_one_host_survives_a_killed_web_and_worker(cluster, moto_s3, capsys):
    running, fal = cluster
    web_killed, web_alive = running.webs
    worker_killed = running.workers[0]
    users = []
    for i in range(USERS):
        user = UserFactory(username=f"cluster{i}", credits=GRANT)
        users.append((user, create_token(user=user, name="cluster")[1]))
    rng = random.Random(16)
    plan = [
        Sent(index=i, user=i % USERS, key=f"cluster-{i}-{uuid.uuid4()}") for i in range(GENERATIONS)
    ]
    done = threading.Semaphore(0)

    def run(sent: Sent) -> Sent:
        try:
            return send(sent, users[sent.user][1], running.webs, random.Random(rng.random()))
        finally:
            done.release()

    started = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        futures = [pool.submit(run, sent) for sent in plan]
        for _ in range(GENERATIONS // 2):  # midway through the accepts
            done.acquire()
        killed_at = time.monotonic() - started
        web_killed.kill()
        worker_killed.kill()
        # A gunicorn worker dies alone on the other web process: its master's child_exit
        # hook drops its live gauge, its counters stay in the totals.
        lone = web_alive.worker_pids()[0]
        subprocess.run(["kill", "-9", str(lone)], check=True)
        time.sleep(DOWN_SECONDS)
        web_killed.start()
        worker_killed.start()
        web_killed.wait_ready()
        worker_killed.wait_ready()
        results = [future.result() for future in futures]
    accepted_in = time.monotonic() - started

    settle_deadline = time.monotonic() + SETTLE_DEADLINE
    while Generation.objects.exclude(status__in=Generation.FINAL).exists():
        if time.monotonic() > settle_deadline:
            stuck = Counter(
                Generation.objects.exclude(status__in=Generation.FINAL).values_list(
                    "status", flat=True
                )
            )
            logs = "\n".join(p.log()[-2000:] for p in running.workers)
            pytest.fail(f"not final {SETTLE_DEADLINE:.0f} s after the accepts: {stuck}\n{logs}")
        time.sleep(0.5)
    settled_in = time.monotonic() - started - accepted_in

    # --- One generation per request, each final and delivered ------------------------------
    failed_requests = [s for s in results if len(s.ids) != 1 or s.error]
    assert not failed_requests, failed_requests[:5]
    generations = {str(g.pk): g for g in Generation.objects.all()}
    assert len(generations) == GENERATIONS  # the retries made no duplicate
    assert {gid for s in results for gid in s.ids} == set(generations)
    statuses = Counter(g.status for g in generations.values())
    assert statuses == {"succeeded": GENERATIONS}, statuses
    for generation in generations.values():
        head = moto_s3.head(generation.video.name)
        assert head["ContentLength"] == generation.video_bytes > 0, generation.pk

    # --- Money --------------------------------------------------------------------------
    check = subprocess.run(
        [sys.executable, "manage.py", "check_ledger"],
        cwd=REPO_ROOT,
        env=web_alive.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    kinds = Counter(
        (str(gid), kind)
        for gid, kind in LedgerEntry.objects.filter(generation__isnull=False).values_list(
            "generation_id", "kind"
        )
    )
    for gid in generations:
        assert kinds[(gid, "hold")] == 1, gid
        assert kinds[(gid, "capture")] + kinds[(gid, "release")] == 1, gid
    for user, _ in users:
        account = CreditAccount.objects.get(user=user)
        charged = sum(g.cost_credits for g in generations.values() if g.owner_id == user.pk)
        assert (account.balance, account.reserved) == (GRANT - charged, 0), user.username

    # --- /metrics against the database and the clients ------------------------------------
    check_metrics(running, fal, results, lone)

    with capsys.disabled():
        received = Counter(code for s in results for code in s.statuses)
        print(
            f"\ncluster: {GENERATIONS} generations from {USERS} users through 2 gunicorn x "
            f"{WEB_WORKERS} workers and 2 qclusters x {Q_WORKERS}; web0 + worker0 SIGKILLed at "
            f"+{killed_at:.1f} s, down {DOWN_SECONDS:.0f} s; accepts done in {accepted_in:.1f} s, "
            f"all final {settled_in:.1f} s later; answers {dict(received)}, "
            f"{sum(s.transport_errors for s in results)} requests without an answer (retried)"
        )


def check_metrics(running: Cluster, fal, results: list[Sent], lone_worker: int) -> None:
    """What agrees with what, exactly:

    * State (generations by status, credits captured) is read from the database at each
      scrape, once per scrape and not per process: both web processes answer the same, and
      it equals the database by construction.
    * Event counters of processes that died (the SIGKILLed gunicorn's workers, the lone
      worker, the SIGKILLed qcluster's) are still in the totals: multiprocess mode keeps each
      process's counts in a file of the shared directory, written as they happen (mmap),
      which a SIGKILL does not undo. So the 201s counted equal the 201s the clients received,
      plus at most the answers that were written but never reached a client (one per request
      that got no answer). Without multiprocess mode each scrape would see one worker's own.
    * fal submits counted by us trail the fake's count by at most the submits a killed
      qcluster worker had under way (the fake counts the request, our counter moves when the
      answer comes back), one per worker process of the killed cluster.
    """
    first, second = (scrape(web) for web in running.webs)
    in_db = Counter(Generation.objects.values_list("status", flat=True))
    captured = -(
        LedgerEntry.objects.filter(kind=LedgerEntry.Kind.CAPTURE).aggregate(s=Sum("amount"))["s"]
        or 0
    )
    for samples in (first, second):
        for status, count in in_db.items():
            assert total(samples, "veo_generations", status=status) == count, status
        assert total(samples, "veo_generations") == GENERATIONS  # not once per process
        assert total(samples, "veo_credits_captured_total") == captured
        assert total(samples, "veo_generations_waiting") == 0
        assert total(samples, "veo_generation_oldest_in_flight_seconds") == 0

    received = Counter(code for s in results for code in s.statuses)
    unanswered = sum(s.transport_errors for s in results)
    for code, count in received.items():
        counted = total(
            second,
            "veo_http_responses_total",
            view="api-generations",
            method="POST",
            status=str(code),
        )
        assert count <= counted <= count + unanswered, (code, count, counted, unanswered)
    assert total(second, "veo_http_requests_in_progress") == 1  # the scrape itself
    assert not (running.metrics_dir / f"gauge_livesum_{lone_worker}.db").exists()
    assert (running.metrics_dir / f"counter_{lone_worker}.db").exists()

    ours = total(second, "veo_fal_calls_total", kind="submit", backend="fal")
    theirs = fal.counters["submit"]
    assert theirs - Q_WORKERS <= ours <= theirs, (ours, theirs)
    assert total(second, "veo_fal_calls_total", backend="simulated") == 0
    assert total(second, "veo_fal_webhook_rejects_total") == 0
