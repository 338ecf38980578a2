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

Who must act on fal's answer
----------------------------
* 401/403 (and 402) are our account's problem, never the user's: `FalAccountProblem`,
  with `reason` "credentials" (the key) or "account_locked" (fal's
  `403 {"detail": "User is locked. Reason: Exhausted balance. ..."}`, billing). A submit
  that gets one pauses dispatch for everyone (`services.account`); a poll that gets one
  leaves the generation in flight, since fal may still be rendering it.
* 408/409/429, 5xx that are not the model's own, transport errors: `FalRetryable`.
* The model's own errors (422 input, content policy, runner errors): `FalJobFailed`.
* A result that is gone (404: fal keeps results 1 h, 6 min above 10 KB) is
  `FalJobFailed` with code `upstream_error`, not the user's `invalid_input`.
* Every error carries a message a user may read (`user_message`: fal's own words only when
  they are about the user's input) and fal's raw words in `.raw`, for logs and staff. A
  generation fails for what fal said in one place, `services.settlement.fail_for_fal`,
  which applies `user_message` to a poll's, a webhook's and a submit's answer alike.
* fal's storage refusing the input image is `FalStorageUnavailable` (a `FalRetryable`):
  the submit waits for it without counting an attempt.
* Answers fal-client cannot parse (an unknown status value -> ValueError, a missing field ->
  KeyError, a non-JSON 2xx -> JSONDecodeError) are not ours to classify: they propagate,
  and the caller treats them per generation (`services.following`).

Time budget (the one place it is decided; settings' Q_CLUSTER comment points here)
-----------------------------------------------------------------------------------------
django-q2 kills a task after `Q_CLUSTER["timeout"]` (90 s). fal-client on its own could
take far longer: up to 10 attempts per request, each with a 120 s timeout
(`QUEUE_POLL_TIMEOUT` for status/result/cancel, whatever `default_timeout` says), with
exponential sleeps of up to 30 s between them. So every gateway call runs inside a budget,
enforced by an httpx request hook on our `SyncClient`, without patching fal-client:

* one call (a submit; a status; a result, which polls the status once more, then GETs the
  result; a cancel) gets at most `CALL_BUDGET_SECONDS` (15 s) in all, retries included;
* each attempt's connect/read/write/pool timeouts are capped at `FAL_HTTP_TIMEOUT` (15 s
  by default) and at what is left of the budget;
* the same request is sent at most `CLIENT_ATTEMPTS` (4) times, so fal-client's sleeps
  between retries add at most about 2 s (0.1 + 0.2 + 0.4 + 0.8 s, x1.5 jitter), and the
  one sleep that can start inside the budget and end after it is at most 1.2 s;
* a call over budget raises `FalRetryable` (a submit whose POSTs were not all answered:
  `FalOutcomeUnknown`, since a job may exist).

Worst cases: one call about 16 s; a submit task one call (plus the image upload, bounded
at 2 x FAL_HTTP_TIMEOUT by `upload_image`): under 50 s, with its lease renewed by
heartbeat meanwhile (generations/leases.py). A look at one generation
(`services.following`) is a status and, once completed, a result: about 33 s. The sweep
starts no new look once its pass has run `SWEEP_PASS_BUDGET_SECONDS`
(`services.sweeping`, 20 s; the rest stay due for the next pass), so a pass ends within
about 55 s, plus the chain's pause of at most 5 s: well under 90 s. A body trickled byte by
byte within each read timeout is the one case per-phase timeouts cannot bound;
django-q2's timeout remains the backstop for it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import fal_client
import fal_client.client as fal_client_module
import httpx
from django.conf import settings

from veoproject import metrics
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
    raw = ""  # fal's own words, for logs and staff; `message` is what a user may read

    def __init__(self, message: str | None = None, *, raw: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.raw = raw or self.message


class FalRetryable(FalError):
    """429, 5xx, or the request never reached fal: try again later."""


class FalStorageUnavailable(FalRetryable):
    """fal's storage did not take the input image: no job was sent, and nothing about this
    generation is wrong (`services.submission` waits for storage without counting it)."""


class FalOutcomeUnknown(FalError):
    """The submit may or may not have created a job (timeout, dropped connection)."""


class FalRejected(FalError):
    """fal refused the request itself (4xx other than 408/409/429)."""

    code = "invalid_input"


class FalJobFailed(FalError):
    """The job ended without a video; `code` is our failure reason."""


class FalAccountProblem(FalError):
    """fal refused our account, not the request (401/402/403): a bad or revoked key, or an
    account fal locked (billing, "User is locked"). Nothing a user did; never a reason to
    fail or refund a generation. `reason` is a `FalAccount.PauseReason` value."""

    CREDENTIALS = "credentials"
    ACCOUNT_LOCKED = "account_locked"
    default_message = "The video service is not accepting work from this site right now."

    def __init__(self, *, status_code: int, raw: str) -> None:
        super().__init__(raw=raw)
        self.status_code = status_code
        locked = status_code == 402 or bool(_ACCOUNT_LOCK_WORDS.search(raw))
        self.reason = self.ACCOUNT_LOCKED if locked else self.CREDENTIALS


# --- Error mapping ----------------------------------------------------------------------------

_ERROR_TYPE_CODES = {
    "request_timeout": "timeout",
    "startup_timeout": "timeout",
    "client_cancelled": "canceled",
    "content_policy_violation": "content_policy",
}


# fal's lock messages: "User is locked. Reason: Exhausted balance. Top up your balance at
# fal.ai/dashboard/billing.", "... Reason: Admin lock. ...", "... Reason: TOP_UP."
# (fal-ai/fal issues #1112, #1147, #1163, #1168).
_ACCOUNT_LOCK_WORDS = re.compile(
    r"locked|balance|billing|top[ _-]?up|payment|exhausted|suspended", re.IGNORECASE
)

# What a user reads when a generation fails for a cause that is not their input. fal's own
# words are kept only for the codes that are about the input (they help to fix it).
USER_INPUT_CODES = ("invalid_input", "content_policy")
PLAIN_MESSAGES = {
    "timeout": "The video service took too long to make this video.",
    "canceled": "The video was canceled at the video service.",
    "upstream_error": "The video service could not make this video.",
    "expired": "The finished video was no longer available from the video service.",
}


def user_message(code: str, raw: str) -> str:
    """The message a user reads for a failure with `code`: fal's words (`raw`) only when
    they are about the user's input, else a plain sentence with no vendor or account
    detail (keys, billing, "User is locked" never reach users)."""
    if code in USER_INPUT_CODES and raw:
        return raw
    return PLAIN_MESSAGES.get(code, PLAIN_MESSAGES["upstream_error"])


# 4xx that are about our account, not the request (a job's ERROR webhook may carry one).
ACCOUNT_STATUS_CODES = (401, 402, 403)


def failure_code(error_type: str | None, status_code: int | None = None) -> str:
    if error_type in _ERROR_TYPE_CODES:
        return _ERROR_TYPE_CODES[error_type]
    if status_code in ACCOUNT_STATUS_CODES:
        return "upstream_error"  # our key or account: nothing the user's input could fix
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

CALL_BUDGET_SECONDS = 15.0  # one gateway call, fal-client's retries included
CLIENT_ATTEMPTS = 4  # times fal-client may send the same request within one call

_local = threading.local()


class CallBudgetSpent(Exception):
    """Raised by our request hook when a call is out of time or attempts. Not an httpx
    error, so fal-client's retry loop lets it through at once."""


@dataclass
class _Call:
    """One gateway call, seen by the request/response hooks of this thread."""

    deadline: float
    attempt_timeout: float
    sent: Counter[str] = field(default_factory=Counter)  # by method, retries included
    answered: Counter[str] = field(default_factory=Counter)  # by method
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)  # by request

    def unanswered(self, method: str) -> int:
        return self.sent[method] - self.answered[method]


def _before_request(request: httpx.Request) -> None:
    """Keep each attempt inside the call's budget (see "Time budget" above) and count the
    requests fal-client sends, its retries included, to see possible duplicate jobs."""
    call: _Call | None = getattr(_local, "call", None)
    if call is None:
        return
    remaining = call.deadline - time.monotonic()
    key = (request.method, request.url.path)  # a retry is the same method and path
    if remaining <= 0.1 or call.attempts[key] >= CLIENT_ATTEMPTS:
        raise CallBudgetSpent(f"{request.method} {request.url.path}")
    call.attempts[key] += 1
    call.sent[request.method] += 1
    cap = min(remaining, call.attempt_timeout)
    timeouts = request.extensions.get("timeout") or {}
    request.extensions["timeout"] = {
        phase: cap if timeouts.get(phase) is None else min(timeouts[phase], cap)
        for phase in ("connect", "read", "write", "pool")
    }


def _after_response(response: httpx.Response) -> None:
    call: _Call | None = getattr(_local, "call", None)
    if call is not None:
        call.answered[response.request.method] += 1


class FalGateway:
    """fal's queue API, through one `fal_client.SyncClient` per process. A submit goes to
    the generation's own model (`endpoint`, a catalogue id; `self.endpoint` when none is
    given). Status, result and cancel need only the app: fal-client builds their URLs from
    owner/app alone (`fal-ai/veo3.1/requests/<id>`), the same for every Veo 3.1 model."""

    def __init__(self, *, key: str, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._client = fal_client.SyncClient(key=key, default_timeout=timeout)
        hooks = self._client._client.event_hooks
        hooks["request"].append(_before_request)
        hooks["response"].append(_after_response)

    @contextmanager
    def _budget(self) -> Iterator[_Call]:
        """Run one call within CALL_BUDGET_SECONDS (the hooks read it from this thread)."""
        call = _Call(deadline=time.monotonic() + CALL_BUDGET_SECONDS, attempt_timeout=self.timeout)
        _local.call = call
        try:
            yield call
        finally:
            _local.call = None

    @contextmanager
    def _job_call(
        self, what: str, *, http_error: Callable[[fal_client.FalClientHTTPError], FalError]
    ) -> Iterator[None]:
        """One call about a job fal already has (status, result, cancel), within the time
        budget: asking again does no harm, so no answer in time or no connection is
        FalRetryable; fal's HTTP errors become what `http_error` makes of them."""
        with self._budget():
            try:
                yield
            except fal_client.FalClientHTTPError as exc:
                raise http_error(exc) from exc
            except CallBudgetSpent as exc:
                raise FalRetryable(f"fal {what} did not answer in time") from exc
            except httpx.HTTPError as exc:
                raise FalRetryable(f"fal {what} failed: {exc.__class__.__name__}") from exc

    def _handle(self, request_id: str) -> fal_client.SyncRequestHandle:
        return self._client.get_handle(self.endpoint, request_id)

    @metrics.fal_call("submit")
    def submit(
        self,
        *,
        arguments: dict[str, Any],
        webhook_url: str | None = None,
        endpoint: str | None = None,
    ) -> Submitted:
        with self._budget() as call:
            try:
                handle = self._client.submit(
                    endpoint or self.endpoint,
                    arguments,
                    webhook_url=webhook_url,
                    start_timeout=settings.GENERATION_DEADLINE_SECONDS,
                )
            except fal_client.FalClientHTTPError as exc:
                raise _with_posts(self._http_error(exc), call) from exc
            except CallBudgetSpent as exc:
                # Every POST answered (429s, say): no job was made by them. One without
                # an answer (a dropped connection) may have made one.
                if call.unanswered("POST"):
                    error: FalError = FalOutcomeUnknown("The submit to fal ran out of time.")
                else:
                    error = FalRetryable("fal kept refusing the submit; out of time.")
                raise _with_posts(error, call) from exc
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The last attempt never reached fal: safe to try again. (An earlier attempt
                # the client retried may have, e.g. a dropped connection: see `posts`.)
                raise _with_posts(
                    FalRetryable(f"fal is unreachable: {exc.__class__.__name__}"), call
                ) from exc
            except httpx.HTTPError as exc:
                raise _with_posts(
                    FalOutcomeUnknown(
                        f"The submit to fal ended without an answer ({exc.__class__.__name__})."
                    ),
                    call,
                ) from exc
        return Submitted(request_id=handle.request_id, attempts=max(call.sent["POST"], 1))

    @metrics.fal_call("status")
    def status(self, *, request_id: str) -> JobStatus:
        """Where the job is. fal-client's ValueError (an unknown status value) and KeyError
        (a missing field) propagate: see "Who must act" above."""
        with self._job_call("status", http_error=self._http_error):
            status = self._handle(request_id).status(with_logs=True)
        if isinstance(status, fal_client.Queued):
            return JobStatus(state="queued", queue_position=status.position)
        if not isinstance(status, fal_client.InProgress | fal_client.Completed):
            # fal-client's own parsing makes one of the three; anything else is unreadable.
            raise ValueError(f"unknown fal status {type(status).__name__}")
        logs = [str(line.get("message", "")) for line in (status.logs or []) if line][-20:]
        if isinstance(status, fal_client.InProgress):
            return JobStatus(state="running", logs=logs)
        return JobStatus(
            state="completed", logs=logs, error=status.error, error_type=status.error_type
        )

    @metrics.fal_call("result")
    def result(self, *, request_id: str) -> JobResult:
        """The finished job's video; FalJobFailed when the model answered with an error or
        the result is gone. Call only after `status` said completed (fal_client's result()
        polls the status until then)."""
        with self._job_call("result", http_error=self._result_error):
            body = self._client.result(self.endpoint, request_id)
        if not isinstance(body, dict):
            raise ValueError(f"fal's result is a {type(body).__name__}, not an object")
        video = body.get("video") or {}
        if not isinstance(video, dict) or not video.get("url"):
            raise FalJobFailed(
                user_message("upstream_error", ""), code="upstream_error", raw="no video in result"
            )
        return JobResult(
            video_url=video["url"],
            content_type=video.get("content_type") or "video/mp4",
            file_size=video.get("file_size"),
        )

    @metrics.fal_call("cancel")
    def cancel(self, *, request_id: str) -> None:
        with self._job_call("cancel", http_error=self._http_error):
            try:
                self._handle(request_id).cancel()
            except fal_client.FalClientHTTPError as exc:
                if exc.status_code in (400, 404):  # already completed, or unknown
                    return
                raise

    @metrics.fal_call("upload")
    def upload_image(
        self, *, data: bytes, content_type: str, file_name: str, expires_in: int
    ) -> str:
        """Put an input image on fal's own storage and return the URL to submit.

        fal-client asks rest.fal.ai for a CDN token and POSTs the bytes to v3.fal.media,
        falling back to fal's GCS upload (fal.md §1.12); fal deletes the file after
        `expires_in` seconds. Any failure means fal's storage is unavailable for now:
        FalStorageUnavailable. The whole upload is bounded (2 x FAL_HTTP_TIMEOUT): fal-client's
        own retries (10 attempts per step) could otherwise outlast the submit's lease.
        """
        # fal-client hard-codes its storage hosts as module globals read at call time
        # (fal.md §1.1); the settings exist to point them at the tests' fake fal.
        if settings.FAL_STORAGE_REST_URL:
            fal_client_module.REST_URL = settings.FAL_STORAGE_REST_URL
        if settings.FAL_STORAGE_CDN_URL:
            fal_client_module.CDN_URL = settings.FAL_STORAGE_CDN_URL
        upload = self._uploads.submit(
            self._client.upload,
            data,
            content_type,
            file_name=file_name,
            lifecycle=fal_client.StorageSettings(expires_in=expires_in),
        )
        try:
            return upload.result(timeout=2 * self._client.default_timeout)
        except TimeoutError as exc:
            raise FalStorageUnavailable("fal storage did not answer in time") from exc
        except fal_client.FalClientHTTPError as exc:
            raise FalStorageUnavailable(f"fal storage answered HTTP {exc.status_code}") from exc
        except httpx.HTTPStatusError as exc:  # the CDN token request
            code = exc.response.status_code
            raise FalStorageUnavailable(f"fal storage answered HTTP {code}") from exc
        except (httpx.HTTPError, KeyError, ValueError) as exc:  # unreachable, or odd answers
            raise FalStorageUnavailable(f"fal storage failed: {exc.__class__.__name__}") from exc

    @cached_property
    def _uploads(self) -> concurrent.futures.ThreadPoolExecutor:
        # Threads of our own, so an upload stuck in fal-client's retries cannot hold a
        # worker; it finishes (or gives up) in the background and its URL is not used.
        return concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="fal-upload")

    @staticmethod
    def _http_error(exc: fal_client.FalClientHTTPError) -> FalError:
        """A refused submit, status or cancel. 400/422 on a submit are about the input;
        404 on a status is a job fal does not know (any more)."""
        status_code = exc.status_code
        if status_code in (408, 409, 429) or status_code >= 500:
            return FalRetryable(f"fal answered HTTP {status_code}")
        raw = _raw_message(exc)
        if status_code in ACCOUNT_STATUS_CODES:
            return FalAccountProblem(status_code=status_code, raw=raw)
        if status_code in (400, 413, 422):
            return FalRejected(raw, raw=raw)
        code = "upstream_error"
        return FalRejected(user_message(code, raw), code=code, raw=f"HTTP {status_code}: {raw}")

    @classmethod
    def _result_error(cls, exc: fal_client.FalClientHTTPError) -> FalError:
        """A refused result fetch (or the status poll fal-client makes before it)."""
        response = exc.response
        status_code = response.status_code
        if status_code in (408, 409, 429) or (status_code >= 500 and not _is_model_error(response)):
            return FalRetryable(f"fal answered HTTP {status_code}")
        if status_code in ACCOUNT_STATUS_CODES:
            return cls._http_error(exc)
        if status_code in (404, 410):
            # fal keeps a result 1 h (6 min above 10 KB): gone, and not the user's doing.
            return FalJobFailed(
                user_message("expired", ""),
                code="upstream_error",
                raw=f"HTTP {status_code}: {_raw_message(exc)}",
            )
        try:
            error_body = response.json()
        except ValueError:
            error_body = {"detail": response.text[:500]}
        if isinstance(error_body, dict) and not error_body.get("error_type"):
            error_body["error_type"] = response.headers.get("x-fal-error-type")
        code, raw = describe_model_error(status_code, error_body)
        return FalJobFailed(user_message(code, raw), code=code, raw=raw)


def _raw_message(exc: fal_client.FalClientHTTPError) -> str:
    try:
        body = exc.response.json()
    except ValueError:
        body = {"detail": str(exc.message)[:500]}
    return describe_model_error(exc.status_code, body)[1]


def _with_posts(error: FalError, call: _Call) -> FalError:
    """Record on a failed submit how many POSTs the client sent (its own retries
    included): a dropped connection it retried may have left a job on fal."""
    error.posts = max(call.sent["POST"], 1)
    return error


def _is_model_error(response: httpx.Response) -> bool:
    """A 5xx that the model itself reported (it carries an error type) is final."""
    return bool(response.headers.get("x-fal-error-type")) or "x-fal-request-id" in response.headers


class FalBackend(Protocol):
    """What the services use of fal: `FalGateway`, or `simulated.SimulatedGateway` when
    the project runs without FAL_KEY. `get_gateway()` returns one; type callers with this."""

    endpoint: str

    def submit(
        self,
        *,
        arguments: dict[str, Any],
        webhook_url: str | None = None,
        endpoint: str | None = None,
    ) -> Submitted: ...

    def status(self, *, request_id: str) -> JobStatus: ...

    def result(self, *, request_id: str) -> JobResult: ...

    def cancel(self, *, request_id: str) -> None: ...

    def upload_image(
        self, *, data: bytes, content_type: str, file_name: str, expires_in: int
    ) -> str: ...


_gateway_lock = threading.Lock()
_gateway: FalBackend | None = None


def get_gateway() -> FalBackend:
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
