"""Chaos: is the money exact and does every job end, whatever fal and our workers do?

Two real qcluster processes share the test database (ORM broker) or a Redis broker; the
fake fal answers 429/500/502, drops connections, answers slowly, fails jobs, never
finishes some, and sends duplicate, delayed, early and missing webhooks to the live
server; twenty users create generations through the API from many threads, retrying
with the same Idempotency-Key, racing themselves, canceling, reusing keys; one worker
cluster is SIGKILLed and restarted in the middle; another fal customer posts validly signed
webhooks about our generations all along (no token, another generation's token, another
job, another fal user, an old delivery replayed, with an OK of their own video or an ERROR
that would refund); fal locks the account ("Exhausted balance") for a while half-way
through. When the dust settles (bounded wait):

* every generation is final (jobs fal never finishes are failed at the deadline; tasks
  lost with the killed cluster - prefetched, running, or on Redis without receipts - are
  re-dispatched by the sweep after their grace period or lease);
* each generation has exactly one hold and exactly one capture (succeeded, the quoted
  cost) or release (failed/canceled); every balance is exact; `check_ledger` exits 0;
* fal got one job per generation, except where a fault window makes a second possible
  (a dropped connection after fal created the job, a submit answered too late, a worker
  killed mid-submit): those are counted and reported, and never charged twice.
* every forged webhook was refused (401, 400 when malformed) and moved nothing: no
  generation follows a job fal did not create or holds a video fal did not make, while
  genuine webhooks to final generations are still answered 200;
* the lock paused dispatch (seen on `FalAccount`), what was accepted meanwhile waited
  pending with its hold, the workers' probe resumed dispatch after the unlock, and no
  generation failed or was refunded because of the lock.

Run: `make test-chaos` (PostgreSQL). Size: CHAOS_GENERATIONS (default 200); see
tests/chaos/harness.py for the other knobs. The summary table is printed either way.
"""

from __future__ import annotations

import os

import pytest

from tests.chaos.harness import ChaosRun, verify

pytestmark = [pytest.mark.chaos, pytest.mark.pg]


def run_and_check(run: ChaosRun, settings, capsys) -> None:
    report = run.run(settings)
    problems = verify(report)
    text = "\n".join([report.summary(), *(f"  PROBLEM: {p}" for p in problems)])
    if os.environ.get("CHAOS_REPORT"):  # append the table to a file (e.g. for CI artifacts)
        with open(os.environ["CHAOS_REPORT"], "a") as out:
            out.write(text + "\n\n")
    with capsys.disabled():
        print("\n" + text)
    if problems:
        logs = "\n\n".join(report.worker_logs)
        pytest.fail(f"{len(problems)} invariant(s) broken; worker log tails:\n{logs}")


def test_chaos_two_workers_orm_broker(
    start_worker, fake_fal_factory, live_server, settings, capsys
):
    fal = fake_fal_factory()
    run = ChaosRun(
        label="ORM broker",
        fal=fal,
        start_worker=start_worker,
        base_url=live_server.url,
        worker_env={},
    )
    run_and_check(run, settings, capsys)


def test_chaos_two_workers_redis_broker(
    redis_broker, start_worker, fake_fal_factory, live_server, settings, capsys
):
    fal = fake_fal_factory()
    run = ChaosRun(
        label="Redis broker",
        fal=fal,
        start_worker=start_worker,
        base_url=live_server.url,
        worker_env={"REDIS_URL": redis_broker.url},
    )
    run_and_check(run, settings, capsys)
