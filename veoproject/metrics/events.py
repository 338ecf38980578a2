"""Events, counted where they happen, per process: HTTP latency by view, fal calls by kind
and outcome, rejected fal webhooks. With `PROMETHEUS_MULTIPROC_DIR` set (read by
prometheus-client when it is imported) every process writes them to files there;
otherwise they live in this process's memory (`EVENTS`)."""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from veoproject.exceptions import ApplicationError

P = ParamSpec("P")
R = TypeVar("R")

# prometheus-client writes a metric without labels to its file as soon as it exists (at this
# import): the directory must be there, also in a process started before anything made it.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

EVENTS = CollectorRegistry()
# No `_created` series beside each counter: multiprocess mode has none, and the text
# format reads the same in either mode.
disable_created_metrics()

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_SECONDS = Histogram(
    "veo_http_request_duration_seconds",
    "Time to answer a request (until the response's headers), by URL name and method.",
    ["view", "method"],
    registry=EVENTS,
)
# In multiprocess mode, the sum over the processes alive (a dead worker's requests are over;
# gunicorn's child_exit hook and veoproject.metrics.multiprocess remove its file).
HTTP_IN_PROGRESS = Gauge(
    "veo_http_requests_in_progress",
    "Requests being answered now, all web processes.",
    multiprocess_mode="livesum",
    registry=EVENTS,
)
HTTP_RESPONSES = Counter(
    "veo_http_responses",
    "Responses by URL name, method and status code.",
    ["view", "method", "status"],
    registry=EVENTS,
)
FAL_CALLS = Counter(
    "veo_fal_calls",
    "Calls to fal's API by kind (submit, status, result, cancel, upload), outcome "
    "(ok, or the error class: retryable, outcome_unknown, rejected, job_failed, "
    "account_problem, storage_unavailable, error) and backend (fal, or simulated: "
    "FAL_SIMULATED's stand-in, which sends nothing anywhere).",
    ["kind", "outcome", "backend"],
    registry=EVENTS,
)
FAL_SECONDS = Histogram(
    "veo_fal_call_duration_seconds",
    "Time one call to fal's API took, fal-client's own retries included, by kind and backend.",
    ["kind", "backend"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0),
    registry=EVENTS,
)
WEBHOOK_REJECTS = Counter(
    "veo_fal_webhook_rejects",
    "fal webhooks refused, by the check that refused them (generations.fal_webhooks."
    "REJECT_REASONS: missing_token, bad_token, missing_headers, bad_signature, "
    "bad_timestamp, stale_timestamp, keys_unavailable, wrong_user, not_this_job with 401; "
    "bad_generation, bad_body, too_large with 400/413).",
    ["reason"],
    registry=EVENTS,
)


class RequestMetricsMiddleware:
    """First in MIDDLEWARE: times every request, short-circuited ones included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with HTTP_IN_PROGRESS.track_inprogress():
            response = self.get_response(request)
        observe_request(request, response.status_code, time.perf_counter() - started)
        return response


def observe_request(request: HttpRequest, status: int, seconds: float) -> None:
    view = view_name(request)
    method = request.method if request.method in HTTP_METHODS else "other"
    HTTP_SECONDS.labels(view, method).observe(seconds)
    HTTP_RESPONSES.labels(view, method, str(status)).inc()


def view_name(request: HttpRequest) -> str:
    """The resolved URL's name (`namespace:name`, or the view's dotted path when the
    pattern has none): never the raw path, which any client can vary without end."""
    match = getattr(request, "resolver_match", None)
    if match is None:  # a middleware answered before the URL was resolved
        try:
            match = resolve(request.path_info, urlconf=getattr(request, "urlconf", None))
        except Resolver404:
            return "unmatched"
    return match.view_name or "unnamed"


def fal_call(kind: str, *, backend: str = "fal") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate the gateway method that makes one kind of fal call: count it by outcome
    and time it. The outcome is "ok" or the FalError subclass it raised; `backend` is
    "simulated" on the simulator's methods, so its calls are seen and never mistaken for
    fal's (nor its instant answers for fal's latency)."""

    def decorate(call: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(call)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            outcome = "error"
            try:
                result = call(*args, **kwargs)
                outcome = "ok"
                return result
            except Exception as exc:
                outcome = fal_outcome(exc)
                raise
            finally:
                FAL_CALLS.labels(kind, outcome, backend).inc()
                FAL_SECONDS.labels(kind, backend).observe(time.perf_counter() - started)

        return timed

    return decorate


def fal_outcome(exc: BaseException) -> str:
    """`FalRetryable` -> "retryable", `FalOutcomeUnknown` -> "outcome_unknown"...; anything
    else (fal-client's parse errors) -> "error". Bounded by the classes in the code."""
    name = type(exc).__name__
    if not (isinstance(exc, ApplicationError) and name.startswith("Fal") and len(name) > 3):
        return "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name[3:]).lower()


def webhook_rejected(*, reason: str) -> None:
    WEBHOOK_REJECTS.labels(reason).inc()
