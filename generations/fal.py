"""The only module that talks to fal.ai (through `fal_client`).

It returns small dataclasses and raises our `FalError` family; no ORM here. Facts about
fal-client 1.0.3 this module relies on (see docs/fal-notes in the README):

* The queue host is read from `FAL_QUEUE_RUN_HOST` when fal_client is imported; submit reads
  the module constant at call time, and we build status/result/cancel URLs from it too.
* fal-client retries 408/409/429, nginx-ingress 502-504, timeouts and transport errors up to
  10 times. A retried *submit* can leave a second (billed) job on fal, and fal has no
  idempotency key. We send `start_timeout` (fal's X-Fal-Request-Timeout, here the
  generation deadline), which stops the client from retrying timeouts: a timed-out submit
  surfaces as `FalOutcomeUnknown` instead of a silent duplicate. A dropped connection is
  still retried by the client; every POST is counted (`Submitted.attempts`), so a possible
  duplicate is visible and logged. Settlement is per generation, so it is never charged twice.
* Invalid input is only reported when the result is fetched (422), so we validate first.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import fal_client
import fal_client.client as fal_client_module
import httpx
from django.conf import settings

from veoproject.exceptions import ApplicationError

logger = logging.getLogger(__name__)


# --- Our types ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    request_id: str
    attempts: int = 1  # POSTs the client sent; above 1 a duplicate fal job may exist


@dataclass(frozen=True)
class JobStatus:
    state: str  # "queued" | "running" | "completed"
    queue_position: int | None = None
    logs: list[str] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None


@dataclass(frozen=True)
class JobResult:
    video_url: str
    content_type: str = "video/mp4"
    file_size: int | None = None


class FalError(ApplicationError):
    code = "upstream_error"
    http_status = 502
    default_message = "The video service failed."
    posts = 0  # from a submit: the POSTs the client sent before it gave up


class FalRetryable(FalError):
    """429, 5xx, or the request never reached fal: try again later."""


class FalOutcomeUnknown(FalError):
    """The submit may or may not have created a job (timeout, dropped connection)."""


class FalRejected(FalError):
    """fal refused the request itself (4xx other than 408/409/429)."""

    code = "invalid_input"


class FalJobFailed(FalError):
    """The job ended without a video; `code` is our failure reason."""


# --- Error mapping ----------------------------------------------------------------------------

_ERROR_TYPE_CODES = {
    "request_timeout": "timeout",
    "startup_timeout": "timeout",
    "client_cancelled": "canceled",
    "content_policy_violation": "content_policy",
}


def failure_code(error_type: str | None, status_code: int | None = None) -> str:
    if error_type in _ERROR_TYPE_CODES:
        return _ERROR_TYPE_CODES[error_type]
    if status_code == 422 or (status_code and 400 <= status_code < 500 and status_code != 499):
        return "invalid_input"
    return "upstream_error"


def describe_model_error(status_code: int | None, body: Any) -> tuple[str, str]:
    """(code, message) from a fal error body: a 422 `{"detail": [{msg, type}, ...]}` or an
    infrastructure `{"detail": str, "error_type": str}`."""
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list) and detail:
        first = detail[0] if isinstance(detail[0], dict) else {"msg": str(detail[0])}
        code = failure_code(first.get("type"), status_code or 422)
        messages = [str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail]
        return code, "; ".join(messages)[:2000]
    error_type = body.get("error_type") if isinstance(body, dict) else None
    message = str(detail) if detail else f"fal answered HTTP {status_code}"
    return failure_code(error_type, status_code), message[:2000]


# --- The gateway --------------------------------------------------------------------------------

_local = threading.local()


def _count_request(request: httpx.Request) -> None:
    counts = getattr(_local, "counts", None)
    if counts is not None:
        counts[request.method] = counts.get(request.method, 0) + 1


class FalGateway:
    """fal's queue API for one endpoint, through one `fal_client.SyncClient` per process."""

    def __init__(self, *, key: str, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self._client = fal_client.SyncClient(key=key, default_timeout=timeout)
        # Count every request the client sends (its retries included), to see duplicates.
        self._client._client.event_hooks["request"].append(_count_request)
        # status/result/cancel use this module constant (120 s) whatever default_timeout
        # says; a stalled fal must not hold a worker for 10 x 120 s.
        fal_client_module.QUEUE_POLL_TIMEOUT = httpx.Timeout(timeout, connect=min(timeout, 5.0))

    def _handle(self, request_id: str) -> fal_client.SyncRequestHandle:
        return self._client.get_handle(self.endpoint, request_id)

    def submit(self, *, arguments: dict[str, Any], webhook_url: str | None = None) -> Submitted:
        _local.counts = {}
        try:
            handle = self._client.submit(
                self.endpoint,
                arguments,
                webhook_url=webhook_url,
                start_timeout=settings.GENERATION_DEADLINE_SECONDS,
            )
        except fal_client.FalClientHTTPError as exc:
            raise _with_posts(self._http_error(exc)) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # The last attempt never reached fal: safe to try again. (An earlier attempt
            # the client retried may have, e.g. a dropped connection: see `posts`.)
            raise _with_posts(
                FalRetryable(f"fal is unreachable: {exc.__class__.__name__}")
            ) from exc
        except httpx.HTTPError as exc:
            raise _with_posts(
                FalOutcomeUnknown(
                    f"The submit to fal ended without an answer ({exc.__class__.__name__})."
                )
            ) from exc
        finally:
            attempts = _local.counts.get("POST", 1)
            _local.counts = None
        return Submitted(request_id=handle.request_id, attempts=max(attempts, 1))

    def status(self, *, request_id: str) -> JobStatus:
        try:
            status = self._handle(request_id).status(with_logs=True)
        except fal_client.FalClientHTTPError as exc:
            raise self._http_error(exc) from exc
        except httpx.HTTPError as exc:
            raise FalRetryable(f"fal status failed: {exc.__class__.__name__}") from exc
        if isinstance(status, fal_client.Queued):
            return JobStatus(state="queued", queue_position=status.position)
        logs = [str(line.get("message", "")) for line in (status.logs or []) if line][-20:]
        if isinstance(status, fal_client.InProgress):
            return JobStatus(state="running", logs=logs)
        return JobStatus(
            state="completed", logs=logs, error=status.error, error_type=status.error_type
        )

    def result(self, *, request_id: str) -> JobResult:
        """The finished job's video; FalJobFailed when the model answered with an error.
        Call only after `status` said completed (fal_client's result() polls until then)."""
        try:
            body = self._client.result(self.endpoint, request_id)
        except fal_client.FalClientHTTPError as exc:
            response = exc.response
            if response.status_code in (408, 409, 429) or (
                response.status_code >= 500 and not _is_model_error(response)
            ):
                raise FalRetryable(f"fal answered HTTP {response.status_code}") from exc
            try:
                error_body = response.json()
            except ValueError:
                error_body = {"detail": response.text[:500]}
            if isinstance(error_body, dict) and not error_body.get("error_type"):
                error_body["error_type"] = response.headers.get("x-fal-error-type")
            code, message = describe_model_error(response.status_code, error_body)
            raise FalJobFailed(message, code=code) from exc
        except httpx.HTTPError as exc:
            raise FalRetryable(f"fal result failed: {exc.__class__.__name__}") from exc
        video = (body or {}).get("video") or {}
        if not video.get("url"):
            raise FalJobFailed("fal returned no video.", code="upstream_error")
        return JobResult(
            video_url=video["url"],
            content_type=video.get("content_type") or "video/mp4",
            file_size=video.get("file_size"),
        )

    def cancel(self, *, request_id: str) -> None:
        try:
            self._handle(request_id).cancel()
        except fal_client.FalClientHTTPError as exc:
            if exc.status_code in (400, 404):  # already completed, or unknown
                return
            raise self._http_error(exc) from exc
        except httpx.HTTPError as exc:
            raise FalRetryable(f"fal cancel failed: {exc.__class__.__name__}") from exc

    @staticmethod
    def _http_error(exc: fal_client.FalClientHTTPError) -> FalError:
        status_code = exc.status_code
        if status_code in (408, 409, 429) or status_code >= 500:
            return FalRetryable(f"fal answered HTTP {status_code}")
        try:
            body = exc.response.json()
        except ValueError:
            body = {"detail": str(exc.message)}
        _, message = describe_model_error(status_code, body)
        if status_code in (401, 403):
            logger.error("event=fal_auth_failed status=%s", status_code)
            return FalRejected(f"fal refused our credentials: {message}", code="upstream_error")
        return FalRejected(message)


def _with_posts(error: FalError) -> FalError:
    """Record on a failed submit how many POSTs the client sent (its own retries
    included): a dropped connection it retried may have left a job on fal."""
    counts = getattr(_local, "counts", None) or {}
    error.posts = counts.get("POST", 1)
    return error


def _is_model_error(response: httpx.Response) -> bool:
    """A 5xx that the model itself reported (it carries an error type) is final."""
    return bool(response.headers.get("x-fal-error-type")) or "x-fal-request-id" in response.headers


_gateway_lock = threading.Lock()
_gateway: Any = None


def get_gateway() -> Any:
    """The real gateway with FAL_KEY, else the simulated backend. One per process."""
    global _gateway
    with _gateway_lock:
        if _gateway is None:
            if settings.FAL_SIMULATED:
                from generations.simulated import SimulatedGateway

                _gateway = SimulatedGateway(endpoint=settings.FAL_ENDPOINT)
            else:
                _gateway = FalGateway(
                    key=settings.FAL_KEY,
                    endpoint=settings.FAL_ENDPOINT,
                    timeout=settings.FAL_HTTP_TIMEOUT,
                )
        return _gateway


def reset_gateway() -> None:
    """Forget the per-process gateway (tests that change FAL_KEY or fal's host)."""
    global _gateway
    with _gateway_lock:
        _gateway = None


def queue_base_url() -> str:
    return fal_client_module.QUEUE_URL_FORMAT
