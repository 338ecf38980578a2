"""The fake fal.ai queue server: ``FakeFal``.

See the package docstring (``tests/fakefal/__init__.py``) for usage. This module holds
the state and the routes; ``transport`` is the HTTPS server, ``scheduler`` the lazy
queue, ``veo`` the model runner's decisions, ``webhooks`` signing and delivery.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .config import ANSWER_FAULTS, FakeFalConfig, Fault, FaultPlan
from .control import handle_control
from .queue_api import QueueAPI, State
from .routes import RecordedRequest, classify, http_error, spoiled
from .scheduler import COMPLETED, Job, Scheduler
from .storage import STORAGE_KINDS, StorageAPI, StorageState
from .tls import TLSIdentity, create_identity, shared_identity
from .transport import Reply, Request, TLSServer
from .webhooks import (
    DeliverySettings,
    WebhookDispatcher,
    post_signed_webhook,
    public_jwk,
    sign_webhook,
)

ASSETS = Path(__file__).resolve().parents[2] / "generations" / "assets"
DEFAULT_VIDEO = ASSETS / "sample.mp4"


class FakeFal(QueueAPI, StorageAPI):
    """An HTTPS fake of fal's queue API, JWKS, CDN file URLs and webhooks.

    Keyword arguments other than the ones below are ``FakeFalConfig`` fields
    (``queue_seconds``, ``run_seconds``, ``max_concurrent``, ``faults``, ...).
    """

    def __init__(
        self,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        tls: TLSIdentity | None = None,
        ca_pem_path: str | None = None,
        video_path: str | Path | None = None,
        webhook_key: Ed25519PrivateKey | None = None,
        **config: Any,
    ) -> None:
        self._initial_config = FakeFalConfig()
        self._initial_config.update(config)
        self.config = copy.deepcopy(self._initial_config)
        if tls is None:
            tls = create_identity(ca_pem_path) if ca_pem_path else shared_identity()
        self.tls = tls
        self._ssl_context = tls.server_context()
        self._bind, self._port = bind, port
        self._video = Path(video_path or DEFAULT_VIDEO).read_bytes()
        self._keys: list[tuple[str, Ed25519PrivateKey]] = []
        self.rotate_webhook_key(keep_old=False, key=webhook_key)
        self._wall_offset = time.time() - time.monotonic()
        self._lock = threading.RLock()
        self._state = self._new_state()
        self._storage = StorageState()
        self._server: TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._dispatcher = WebhookDispatcher(
            sign=lambda body, rid: self.sign(body, rid),
            settings=lambda: DeliverySettings(
                self.config.webhook_max_attempts,
                self.config.webhook_retry_base,
                self.config.webhook_timeout,
            ),
            on_result=self._webhook_result,
            tick=self._tick,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeFal:
        self.come_up()
        self._dispatcher.start()
        return self

    def stop(self) -> None:
        self.go_down()
        self._dispatcher.stop()

    def go_down(self) -> None:
        """Stop answering (connections refused, open ones cut) but keep the queue
        running and webhooks flowing, like an ingress outage. ``come_up()`` undoes it."""
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None

    def come_up(self) -> None:
        """Listen again (same port after the first start)."""
        if self._server is not None:
            return
        self._server = TLSServer((self._bind, self._port), self._ssl_context, self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fakefal-http",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> FakeFal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the value for FAL_QUEUE_RUN_HOST."""
        return f"{self._bind}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    @property
    def ca_pem_path(self) -> str:
        return self.tls.ca_pem_path

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    # ------------------------------------------------------------------ control API

    def configure(self, **values: Any) -> dict[str, Any]:
        """Change config at runtime; timing changes apply to jobs submitted later,
        except ``max_concurrent`` which applies immediately."""
        with self._lock:
            self.config.update(values)
            st = self._state
            if "seed" in values:
                st.plan.rng.seed(self.config.seed)
            if self.config.max_concurrent != st.scheduler.max_concurrent:
                cap = self.config.max_concurrent
                self._finished(st.scheduler.set_max_concurrent(cap, time.monotonic()))
            if st.records.maxlen != self.config.max_records:
                st.records = deque(st.records, maxlen=self.config.max_records)
            self._dispatcher.wake()
            return self.config.to_dict()

    def fail_next(
        self,
        target: str,
        fault: int | str,
        times: int = 1,
        *,
        nginx: bool | None = None,
        seconds: float | None = None,
    ) -> None:
        """Force a fault for the next ``times`` requests/jobs of ``target``.

        HTTP targets submit/status/result/cancel/files/upload ("*" = any of the first
        four; "upload" = any storage write, storage.py):
        a status code (502-504 look like the nginx ingress unless ``nginx=False``),
        "drop", "reset" or "slow" (``seconds`` overrides ``slow_seconds``).
        "job": runner_error/timeout/never/content_policy for the next submitted jobs.
        "webhook": duplicate/delay/early/drop for the next jobs submitted with a
        ``fal_webhook`` (``seconds`` = the delay).
        """
        with self._lock:
            self._state.plan.force(target, Fault(str(fault), nginx, seconds), times)

    def reset(self, *, config: bool = True) -> None:
        """Forget jobs, records, counters, forced faults and pending webhooks; by
        default also restore the config given at construction."""
        with self._lock:
            if config:
                self.config = copy.deepcopy(self._initial_config)
            self._dispatcher.clear()
            self._state = self._new_state()
            self._storage = StorageState()
            self._dispatcher.wake()

    def rotate_webhook_key(
        self, *, keep_old: bool = True, key: Ed25519PrivateKey | None = None
    ) -> str:
        """Sign with a new key from now on; the JWKS keeps old keys if ``keep_old``."""
        key = key or Ed25519PrivateKey.generate()
        # kid from the key itself, so a restarted process reusing the key keeps its JWKS.
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        kid = hashlib.sha256(raw).hexdigest()[:16]
        self._keys = [(kid, key), *self._keys] if keep_old else [(kid, key)]
        return kid

    @property
    def webhook_private_key(self) -> Ed25519PrivateKey:
        return self._keys[0][1]

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(key, kid) for kid, key in self._keys]}

    def sign(
        self,
        body: bytes,
        request_id: str,
        timestamp: int | None = None,
        *,
        user_id: str | None = None,
    ) -> dict[str, str]:
        """fal's signature headers for ``body``; ``user_id`` defaults to this account's."""
        user = self.config.user_id if user_id is None else user_id
        return sign_webhook(self.webhook_private_key, body, request_id, user, timestamp)

    def forge_webhook(
        self,
        url: str,
        body: bytes | dict[str, Any],
        *,
        request_id: str,
        user_id: str | None = None,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        """Sign an arbitrary webhook with the fake's key, as fal signs any customer's, and
        POST it to ``url`` (a dict body is sent as fal would: sorted keys). ``user_id``:
        another fal customer's; ``headers`` override the signed ones (e.g. a request id
        other than the signed one). Returns the HTTP status."""
        raw = json.dumps(body, sort_keys=True).encode() if isinstance(body, dict) else body
        signed = {**self.sign(raw, request_id, timestamp, user_id=user_id), **(headers or {})}
        with self._lock:
            self._state.counters["webhooks.forged"] += 1
        return post_signed_webhook(url, raw, signed, timeout=self.config.webhook_timeout)

    # ------------------------------------------------------------------ inspection

    @property
    def counters(self) -> Counter[str]:
        with self._lock:
            return Counter(self._state.counters)

    def requests(self, kind: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._state.records if kind is None or r.kind == kind]

    @property
    def webhook_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.webhook_log)

    def job(self, request_id: str) -> Job | None:
        with self._lock:
            self._advance(time.monotonic())
            return self._state.jobs.get(request_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            self._advance(time.monotonic())
            return list(self._state.jobs.values())

    def stats(self) -> dict[str, Any]:
        with self._lock:
            st = self._state
            self._advance(time.monotonic())
            queued, running = st.scheduler.waiting_count, st.scheduler.running_count
            outcomes = Counter(j.final_outcome for j in st.jobs.values() if j.state == COMPLETED)
            return {
                "host": self.host,
                "counters": dict(st.counters),
                "submits_by_webhook": dict(st.submits_by_webhook),
                "submits_by_prompt": dict(st.submits_by_prompt),
                "jobs": {
                    "total": len(st.jobs),
                    "queued": queued,
                    "running": running,
                    "max_running": st.scheduler.max_running_seen,
                    "completed": len(st.jobs) - queued - running,
                    "completed_by_outcome": dict(outcomes),
                },
                "webhooks_pending": self._dispatcher.pending,
                "forced_faults": st.plan.forced(),
                "config": self.config.to_dict(),
            }

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("fakefal: condition not met in time")
            time.sleep(0.02)

    def wait_for_webhooks(self, delivered: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until ``delivered`` webhooks got a 2xx; returns the delivery log."""
        self.wait_for(lambda: self.counters["webhooks.delivered"] >= delivered, timeout)
        return self.webhook_log

    def close_connections(self) -> None:
        """Cut all keep-alive connections, as a fal restart would."""
        if self._server is not None:
            self._server.close_connections()

    # ------------------------------------------------------------------ HTTP entry

    def handle(self, req: Request) -> Reply:
        if req.path.startswith("/_control/"):
            return handle_control(self, req)
        segs = [s for s in req.path.split("/") if s]
        kind = classify(req.method, segs)
        with self._lock:
            st = self._state
            body = req.json()
            if body is None and req.raw:
                body = req.raw.decode("utf-8", "replace")
            record = RecordedRequest(
                time.time(), req.method, req.path, req.query, req.headers, body, kind
            )
            st.records.append(record)
            st.counters["requests"] += 1
            st.counters[kind] += 1
            reply = self._route(req, kind, segs, record)
            record.status = reply.status if reply.action == "send" else reply.action
            return reply

    def _route(self, req: Request, kind: str, segs: list[str], record: RecordedRequest) -> Reply:
        st = self._state
        if kind == "jwks":
            return Reply.json(200, self.jwks)
        if kind == "unknown":
            st.counters["not_found"] += 1
            return Reply.json(404, {"detail": "Not Found"})
        if kind == "method_not_allowed":
            return Reply.json(405, {"detail": "Method Not Allowed"})
        fault = st.plan.http_fault(kind, self.config.faults)
        if fault is not None:
            record.fault = fault.kind
            st.counters[f"faults.{kind}.{fault.kind}"] += 1
            if fault.kind == "reset":
                return Reply(action="reset")
            if fault.kind.isdigit():
                return http_error(int(fault.kind), fault.nginx)
        if kind not in ("files", *STORAGE_KINDS) and not self._authorized(req):
            st.counters["auth_failed"] += 1
            return Reply.json(401, {"detail": "No user found for Key ID and Secret"})
        now = time.monotonic()
        self._advance(now)
        if kind == "submit":
            reply = self._submit(req, segs, now, record)
        elif kind == "files":
            reply = self._file(req, segs[1])
        elif kind in STORAGE_KINDS:
            reply = self._storage_route(req, kind, segs)  # own auth: Key or CDN token
        else:
            job = st.jobs.get(segs[3])
            record.request_id = segs[3]
            if job is None or (job.owner, job.app) != (segs[0], segs[1]):
                st.counters["not_found"] += 1
                if kind == "cancel":
                    return Reply.json(404, {"status": "NOT_FOUND"})
                return Reply.json(404, {"detail": f"Request {segs[3]} not found"})
            route = {"status": self._status, "result": self._result, "cancel": self._cancel}
            reply = route[kind](job, req, now)
        if fault is not None and fault.kind == "drop":
            reply.action = "drop"
        elif fault is not None and fault.kind == "slow":
            reply.delay = fault.seconds if fault.seconds is not None else self.config.slow_seconds
        elif fault is not None and fault.kind in ANSWER_FAULTS:
            reply = spoiled(fault.kind, reply)
        return reply

    def _authorized(self, req: Request) -> bool:
        scheme, _, key = (req.header("Authorization") or "").partition(" ")
        key = key.strip()
        if scheme != "Key" or not key:
            return False
        return self.config.accepted_keys is None or key in self.config.accepted_keys

    def _new_state(self) -> State:
        return State(
            plan=FaultPlan(self.config.seed),
            scheduler=Scheduler(self.config.max_concurrent),
            records=deque(maxlen=self.config.max_records),
        )
