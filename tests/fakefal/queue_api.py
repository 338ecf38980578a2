"""fal's queue semantics on top of the lazy scheduler: submit/status/result/cancel,
CDN file URLs and webhook scheduling. Mixed into ``FakeFal`` (server.py)."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import FakeFalConfig, FaultPlan
from .routes import RecordedRequest, ranged
from .scheduler import COMPLETED, IN_QUEUE, Job, Scheduler
from .transport import Reply, Request
from .veo import INFRA_ERRORS, SCHEMAS, content_policy_detail, parse_markers, validate
from .webhooks import Delivery, WebhookDispatcher


@dataclass
class State:
    """Everything reset() throws away."""

    plan: FaultPlan
    scheduler: Scheduler
    records: deque[RecordedRequest]
    jobs: dict[str, Job] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    counters: Counter[str] = field(default_factory=Counter)
    submits_by_webhook: Counter[str] = field(default_factory=Counter)
    submits_by_prompt: Counter[str] = field(default_factory=Counter)
    webhook_log: list[dict[str, Any]] = field(default_factory=list)


class QueueAPI:
    """Route handlers and webhook glue; every method runs under ``FakeFal._lock``
    unless noted."""

    config: FakeFalConfig
    _lock: threading.RLock
    _state: State
    _dispatcher: WebhookDispatcher
    _video: bytes
    _wall_offset: float  # time.time() - time.monotonic() at start-up

    base_url: str  # provided by FakeFal (https://127.0.0.1:PORT)

    # ------------------------------------------------------------------ account

    def lock_account(self, reason: str = "Exhausted balance") -> None:
        """Lock the account as fal does when the balance runs out: every submit answers
        403 "User is locked. Reason: <reason>. ..." until ``unlock_account()``."""
        self.configure(locked_reason=reason)  # type: ignore[attr-defined]

    def unlock_account(self) -> None:
        self.configure(locked_reason=None)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ queue routes

    def _submit(self, req: Request, segs: list[str], now: float, record: RecordedRequest) -> Reply:
        st, cfg = self._state, self.config
        if cfg.locked_reason:
            st.counters["submits_refused_locked"] += 1
            return Reply.json(403, {"detail": _lock_detail(cfg.locked_reason)})
        endpoint = "/".join(segs)
        if endpoint not in SCHEMAS:  # fal knows only its own applications
            st.counters["submits_unknown_endpoint"] += 1
            return Reply.json(404, {"detail": f"Application '{endpoint}' not found"})
        body = req.json()
        webhook = req.query.get("fal_webhook") or None
        prompt = body.get("prompt") if isinstance(body, dict) else None
        markers = parse_markers(prompt)
        errors = validate(body, endpoint)
        # Precedence: prompt marker > forced job fault > validation > random rates.
        forced = st.plan.pop_forced("job")
        if markers.outcome:
            outcome = markers.outcome
        elif forced is not None:
            outcome = forced.kind
        elif errors:
            outcome = "invalid"
        else:
            rates = {
                "runner_error": cfg.job_failure_rate,
                "timeout": cfg.job_timeout_rate,
                "content_policy": cfg.content_policy_rate,
                "never": cfg.never_finish_rate,
            }
            outcome = st.plan.choose(rates) or "ok"
        run = cfg.run_seconds
        if outcome == "never":
            run = float("inf")
        elif markers.run_seconds is not None:
            run = markers.run_seconds
        elif outcome == "invalid":
            run = min(run, cfg.invalid_run_seconds)
        webhook_faults: dict[str, float] = {}
        if webhook:
            webhook_faults.update(markers.webhook)
            forced_hook = st.plan.pop_forced("webhook")
            if forced_hook is not None:
                webhook_faults[forced_hook.kind] = forced_hook.seconds or 0.0
            for name in ("duplicate", "delay", "early", "drop"):
                if st.plan.chance(getattr(cfg, f"webhook_{name}_rate")):
                    webhook_faults.setdefault(name, 0.0)
        job = Job(
            request_id=str(uuid.uuid4()),
            seq=next(st.seq),
            owner=segs[0],
            app=segs[1],
            endpoint=endpoint,
            input=body,
            webhook_url=webhook,
            submitted_at=now,
            eligible_at=now + cfg.queue_seconds,
            run_seconds=run,
            outcome=outcome,  # type: ignore[arg-type]
            errors=errors,
            webhook_faults=webhook_faults,
            instant="early" in webhook_faults,
            start_deadline=_start_deadline(req, now),
        )
        st.jobs[job.request_id] = job
        record.request_id = job.request_id
        st.counters["jobs_created"] += 1
        st.counters[f"jobs.outcome.{outcome}"] += 1
        st.submits_by_webhook[webhook or ""] += 1
        if isinstance(prompt, str):
            st.submits_by_prompt[prompt] += 1
        self._finished(st.scheduler.submit(job, now))
        self._dispatcher.wake()
        position = st.scheduler.position(job) if job.state == IN_QUEUE else 0
        payload = {
            "request_id": job.request_id,
            "gateway_request_id": job.request_id,
            **self._urls(job),
            "status": IN_QUEUE,
            "queue_position": position,
        }
        reply = Reply.json(200, payload, {"x-fal-request-id": job.request_id})
        if job.instant:
            st.counters["webhooks.early"] += 1
            reply.before_send = lambda: self._send_early(job)
        return reply

    def _status(self, job: Job, req: Request, now: float) -> Reply:
        with_logs = req.query.get("logs", "").lower() in ("1", "true", "yes")
        payload: dict[str, Any] = {
            "status": job.state,
            "request_id": job.request_id,
            **self._urls(job),
        }
        if job.state == IN_QUEUE:
            payload["queue_position"] = self._state.scheduler.position(job)
        else:
            payload["logs"] = self._logs(job, now) if with_logs else None
        if job.state == COMPLETED:
            ran = job.started_at is not None and not job.instant
            inference = (job.ended_at or now) - (job.started_at or now)
            payload["metrics"] = {"inference_time": round(inference, 3)} if ran else {}
            if job.final_outcome in INFRA_ERRORS:
                _, detail, error_type = INFRA_ERRORS[job.final_outcome]
                payload["error"], payload["error_type"] = detail, error_type
        code = 200 if job.state == COMPLETED else 202
        return Reply.json(code, payload, {"x-fal-request-id": job.request_id})

    def _result(self, job: Job, req: Request, now: float) -> Reply:
        headers = {"x-fal-request-id": job.request_id}
        if job.state != COMPLETED:
            return Reply.json(400, {"detail": "Request is still in progress"}, headers)
        ttl = self.config.result_ttl_seconds
        if ttl is not None and job.ended_at is not None and now - job.ended_at > ttl:
            return Reply.json(404, {"detail": f"Request {job.request_id} not found"}, headers)
        code, payload, extra = self._outcome_payload(job)
        return Reply.json(code, payload, {**headers, **extra})

    def _cancel(self, job: Job, req: Request, now: float) -> Reply:
        headers = {"x-fal-request-id": job.request_id}
        cancelled, finished = self._state.scheduler.cancel(job, now)
        self._finished(finished)
        self._dispatcher.wake()
        if not cancelled:
            return Reply.json(400, {"status": "ALREADY_COMPLETED"}, headers)
        self._state.counters["cancelled"] += 1
        return Reply.json(202, {"status": "CANCELLATION_REQUESTED"}, headers)

    def _file(self, req: Request, name: str) -> Reply:
        job = self._state.jobs.get(name.removesuffix(".mp4"))
        if not name.endswith(".mp4") or job is None or job.final_outcome != "ok":
            return Reply.json(404, {"detail": "Not Found"})
        return ranged(self._video, req.header("Range"))

    # ------------------------------------------------------------------ helpers

    def _urls(self, job: Job) -> dict[str, str]:
        # Only owner/app, never the endpoint path (fal.md §0.4).
        base = f"{self.base_url}/{job.owner}/{job.app}/requests/{job.request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _outcome_payload(self, job: Job) -> tuple[int, Any, dict[str, str]]:
        outcome = job.final_outcome
        if outcome == "ok":
            video = {
                "url": f"{self.base_url}/files/{job.request_id}.mp4",
                "content_type": "video/mp4",
                "file_name": "output.mp4",
                "file_size": len(self._video),
            }
            return 200, {"video": video}, {}
        if outcome == "invalid":
            return 422, {"detail": job.errors}, {"X-Fal-Retryable": "false"}
        if outcome == "content_policy":
            prompt = job.input.get("prompt") if isinstance(job.input, dict) else None
            return 422, {"detail": content_policy_detail(prompt)}, {"X-Fal-Retryable": "false"}
        code, detail, error_type = INFRA_ERRORS[outcome]
        headers = {"X-Fal-Error-Type": error_type}
        if outcome == "start_timeout":
            headers["X-Fal-Request-Timeout-Type"] = "user"
        return code, {"detail": detail, "error_type": error_type}, headers

    def _logs(self, job: Job, now: float) -> list[dict[str, Any]]:
        def entry(message: str, at: float) -> dict[str, Any]:
            stamp = datetime.fromtimestamp(at + self._wall_offset, UTC).isoformat()
            return {"message": message, "level": "INFO", "source": "USER", "timestamp": stamp}

        logs = []
        if job.started_at is not None:
            logs.append(entry("Starting video generation", job.started_at))
        if job.state == COMPLETED and job.final_outcome == "ok":
            logs.append(entry("Video generated", job.ended_at or now))
        return logs

    def _advance(self, now: float) -> None:
        self._finished(self._state.scheduler.advance(now))

    def _tick(self, now: float) -> float | None:
        with self._lock:
            self._advance(now)
            return self._state.scheduler.next_event()

    def _finished(self, jobs: list[Job]) -> None:
        """Queue webhooks for jobs that just completed (called under the lock)."""
        st = self._state
        for job in jobs:
            if not job.webhook_url or job.instant:
                continue
            faults = job.webhook_faults
            if "drop" in faults:
                st.counters["webhooks.dropped"] += 1
                continue
            due = job.ended_at if job.ended_at is not None else time.monotonic()
            if "delay" in faults:
                st.counters["webhooks.delayed"] += 1
                due += faults["delay"] or st.plan.rng.uniform(0, self.config.webhook_delay_seconds)
            body = self._webhook_body(job)
            self._dispatcher.schedule(job.webhook_url, body, job.request_id, due)
            if "duplicate" in faults:
                st.counters["webhooks.duplicated"] += 1
                again = due + st.plan.rng.uniform(0.05, 0.5)
                self._dispatcher.schedule(
                    job.webhook_url, body, job.request_id, again, duplicate=True
                )

    def _send_early(self, job: Job) -> None:
        assert job.webhook_url
        with self._lock:
            body = self._webhook_body(job)
        self._dispatcher.send_now(job.webhook_url, body, job.request_id)
        if "duplicate" in job.webhook_faults:
            again = time.monotonic() + 0.1
            self._dispatcher.schedule(job.webhook_url, body, job.request_id, again, duplicate=True)

    def _webhook_body(self, job: Job) -> bytes:
        code, payload, _ = self._outcome_payload(job)
        message = {
            "request_id": job.request_id,
            "gateway_request_id": job.request_id,
            "status": "OK" if code == 200 else "ERROR",
            "error": None if code == 200 else f"Invalid status code: {code}",
            "payload": payload,
        }
        return json.dumps(message, sort_keys=True).encode()  # fal sends sorted keys

    def _webhook_result(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        ok = status is not None and 200 <= status < 300
        with self._lock:
            st = self._state
            st.counters["webhooks.sent"] += 1
            st.counters["webhooks.delivered" if ok else "webhooks.failed"] += 1
            if not ok and delivery.attempt >= self.config.webhook_max_attempts:
                st.counters["webhooks.gave_up"] += 1
            st.webhook_log.append(
                {
                    "time": time.time(),
                    "url": delivery.url,
                    "request_id": delivery.request_id,
                    "attempt": delivery.attempt,
                    "duplicate": delivery.duplicate,
                    "status": status,
                    "error": error,
                    "body": json.loads(delivery.body),
                }
            )


def _lock_detail(reason: str) -> str:
    """fal's words for a locked account (fal-ai/fal issues #1112, #1147, #1168)."""
    if reason.lower().startswith("exhausted balance"):
        return (
            "User is locked. Reason: Exhausted balance. Top up your balance at "
            "fal.ai/dashboard/billing."
        )
    return f"User is locked. Reason: {reason.rstrip('.')}. Please contact support@fal.ai"


def _start_deadline(req: Request, now: float) -> float | None:
    """fal fails a request that has not started within X-Fal-Request-Timeout seconds."""
    value = req.header("X-Fal-Request-Timeout")
    try:
        return now + float(value) if value else None
    except ValueError:
        return None
