"""Prometheus metrics: the one package that defines them, and `/metrics` (README "Metrics
and alerts" lists every name and what to alert on).

Two kinds of numbers, kept apart on purpose:

* **Events**, counted where they happen, per process: HTTP latency by view
  (`RequestMetricsMiddleware`), fal calls by kind and outcome (`fal_call`, a decorator on
  the gateway's methods), rejected fal webhooks (`webhook_rejected`). With
  `PROMETHEUS_MULTIPROC_DIR` set (prometheus-client's own variable, read when it is
  imported) every gunicorn and qcluster process writes them to files there and a scrape
  adds them up; otherwise they live in this process's memory.
* **State**, read from the database at scrape time by `DatabaseCollector` (a handful of
  aggregate queries, whatever the number of rows): generations by status, waiting and at
  fal, the oldest in flight, credits held/captured/released, the task queue, callback
  attempts, dispatch paused. Every process answers the same, and the numbers agree with the
  database by construction.

Who may scrape: `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time), or a
client whose address (`accounts.limits.client_address`: `REMOTE_ADDR`, or behind
`TRUSTED_PROXY_COUNT` proxies the address the outermost proxy saw; IPv6 by /64) is in
`METRICS_ALLOW`. Neither set: `/metrics` does not exist (404).

Modules: `events` (the per-process metric objects and the calls that move them),
`database` (the state collector), `scrape` (`/metrics`: who may read it, and the registry a
scrape reads), `multiprocess` (the shared directory: emptied at the host's start, a dead
process's counters kept and its live gauges dropped) and `gunicorn` (gunicorn's hooks for
it, `--config python:veoproject.metrics.gunicorn`). Callers use the names below.
"""

from veoproject.metrics.database import DatabaseCollector
from veoproject.metrics.events import (
    EVENTS,
    RequestMetricsMiddleware,
    fal_call,
    webhook_rejected,
)
from veoproject.metrics.scrape import metrics_view, scrape_registry

__all__ = [
    "EVENTS",
    "DatabaseCollector",
    "RequestMetricsMiddleware",
    "fal_call",
    "metrics_view",
    "scrape_registry",
    "webhook_rejected",
]
