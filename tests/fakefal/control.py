"""``/_control/*``: configure and inspect a fake running in another process.

No auth, never recorded, never faulted. Errors in the request answer 400.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .scheduler import Job
from .transport import Reply, Request

if TYPE_CHECKING:
    from .server import FakeFal


def job_info(job: Job) -> dict[str, Any]:
    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - job.submitted_at, 3)

    return {
        "request_id": job.request_id,
        "endpoint": job.endpoint,
        "state": job.state,
        "outcome": job.final_outcome,
        "webhook_url": job.webhook_url,
        "webhook_faults": job.webhook_faults,
        "input": job.input,
        # seconds after submit
        "started_after": rel(job.started_at),
        "ended_after": rel(job.ended_at),
    }


def handle_control(fal: FakeFal, req: Request) -> Reply:
    name = req.path.removeprefix("/_control/").strip("/")
    body = req.json()
    if not isinstance(body, dict):
        body = {}
    get, post = req.method == "GET", req.method == "POST"
    try:
        if get and name == "stats":
            return Reply.json(200, fal.stats())
        if get and name == "info":
            info = {
                "host": fal.host,
                "base_url": fal.base_url,
                "ca_pem_path": fal.ca_pem_path,
                "jwks_url": fal.jwks_url,
                "jwks": fal.jwks,
                "user_id": fal.config.user_id,
                "pid": os.getpid(),
            }
            return Reply.json(200, info)
        if get and name == "config":
            return Reply.json(200, fal.config.to_dict())
        if post and name == "config":
            return Reply.json(200, fal.configure(**body))
        if post and name == "reset":
            fal.reset(config=bool(body.get("config", True)))
            return Reply.json(200, {"ok": True})
        if post and name == "fail_next":
            fal.fail_next(
                body["target"],
                body["fault"],
                int(body.get("times", 1)),
                nginx=body.get("nginx"),
                seconds=body.get("seconds"),
            )
            return Reply.json(200, {"forced_faults": fal.stats()["forced_faults"]})
        if get and name == "requests":
            kind = req.query.get("kind") or None
            limit = int(req.query.get("limit", "1000"))
            records = fal.requests(kind)[-limit:] if limit > 0 else []
            return Reply.json(200, [r.to_dict() for r in records])
        if get and name == "webhooks":
            return Reply.json(200, fal.webhook_log)
        if get and name == "jobs":
            return Reply.json(200, [job_info(j) for j in fal.jobs()])
        if get and name.startswith("jobs/"):
            job = fal.job(name.removeprefix("jobs/"))
            if job is None:
                return Reply.json(404, {"detail": "unknown job"})
            return Reply.json(200, job_info(job))
        if post and name == "sign":
            raw = str(body["body"]).encode()
            headers = fal.sign(raw, str(body["request_id"]), body.get("timestamp"))
            return Reply.json(200, headers)
        if post and name == "close_connections":
            # Answer first, then cut (the caller's own connection included).
            reply = Reply.json(200, {"ok": True}, {"Connection": "close"})
            reply.after_send = fal.close_connections
            return reply
    except (KeyError, ValueError, TypeError) as exc:
        return Reply.json(400, {"detail": f"{type(exc).__name__}: {exc}"})
    return Reply.json(404, {"detail": f"unknown control endpoint {req.method} {name}"})
