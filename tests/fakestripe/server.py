"""``FakeStripe``: the parts of Stripe's API the project calls, on 127.0.0.1 in a thread.

- ``POST /v1/checkout/sessions`` (form-encoded, ``Authorization: Bearer <secret key>``,
  ``Idempotency-Key`` honoured) answers a Checkout Session object;
  ``GET /v1/checkout/sessions/{id}`` retrieves one; ``GET /v1/checkout/sessions
  ?payment_intent=pi_...`` lists the one that made a PaymentIntent;
  ``GET /v1/disputes/{id}`` retrieves a dispute as it is now.
- ``GET /c/pay/{id}`` is the hosted checkout page: a form whose POST pays the session,
  delivers the signed ``checkout.session.completed`` to ``webhook_url`` (if set) and
  redirects to the session's ``success_url``; ``.../cancel`` goes to ``cancel_url``.
- Stripe's side of a payment's life, for tests: ``complete``, ``async_succeed``,
  ``async_fail``, ``expire``, ``refund``, ``dispute`` (``escalate_dispute``,
  ``close_dispute``) change the session and return the event Stripe would send
  (deliver it with ``tests.fakestripe.webhooks``).
- ``fail_next(status)`` makes the next API call answer an error in Stripe's shape.

Shapes follow https://docs.stripe.com/api/checkout/sessions/object,
/api/charges/object, /api/disputes/object and /api/events/object (subsets).
"""

from __future__ import annotations

import copy
import html
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from .forms import decode
from .signing import signature_header

API_VERSION = "2026-10-28.endive"


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message}}
        if param:
            self.body["error"]["param"] = param
        if code:
            self.body["error"]["code"] = code


class FakeStripe:
    def __init__(
        self,
        *,
        api_key: str = "sk_test_fake_secret_key",
        webhook_secret: str = "whsec_fake_signing_secret",
        webhook_url: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.sessions: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}  # by session id
        self.disputes: dict[str, dict[str, Any]] = {}  # by session id (one per charge)
        self.requests: list[dict[str, Any]] = []
        self.delivered: list[tuple[dict[str, Any], int]] = []
        self._idempotent: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self._faults: list[int] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeStripe:
        fake = self

        class Handler(_Handler):
            stripe = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fakestripe", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([status] * times)

    # ------------------------------------------------------------------ the API

    def api(self, method: str, path: str, headers: dict[str, str], body: str) -> tuple[int, Any]:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            if self._faults:
                status = self._faults.pop(0)
                raise StripeError(
                    status,
                    "An error occurred with our connection to Stripe."
                    if status >= 500
                    else "Request failed.",
                    type_="api_error" if status >= 500 else "invalid_request_error",
                )
        if headers.get("authorization") != f"Bearer {self.api_key}":
            raise StripeError(401, "Invalid API Key provided: sk_test_****")
        url = urlsplit(path)
        if method == "POST" and url.path == "/v1/checkout/sessions":
            return self._idempotently(headers.get("idempotency-key"), body, self._create, body)
        if method == "GET" and url.path == "/v1/checkout/sessions":
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            return 200, self._list(query)
        if method == "GET" and url.path.startswith("/v1/checkout/sessions/"):
            session_id = url.path.rsplit("/", 1)[1]
            with self._lock:
                if session_id not in self.sessions:
                    raise StripeError(
                        404, f"No such checkout.session: '{session_id}'", param="session",
                        code="resource_missing",
                    )  # fmt: skip
                return 200, copy.deepcopy(self.sessions[session_id])
        if method == "GET" and url.path.startswith("/v1/disputes/"):
            dispute_id = url.path.rsplit("/", 1)[1]
            with self._lock:
                for dispute in self.disputes.values():
                    if dispute["id"] == dispute_id:
                        return 200, copy.deepcopy(dispute)
            raise StripeError(
                404, f"No such dispute: '{dispute_id}'", param="dispute", code="resource_missing"
            )
        raise StripeError(404, f"Unrecognized request URL ({method}: {url.path}).")

    def _idempotently(self, key: str | None, body: str, create, *args) -> tuple[int, Any]:
        if not key:
            return create(*args)
        with self._lock:
            if key in self._idempotent:
                first_body, status, answer = self._idempotent[key]
                if first_body != body:
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                        type_="idempotency_error",
                    )
                return status, copy.deepcopy(answer)
            status, answer = create(*args)
            self._idempotent[key] = (body, status, copy.deepcopy(answer))
            return status, answer

    def _create(self, body: str) -> tuple[int, dict[str, Any]]:
        params = decode(body)
        for name in ("success_url", "line_items"):
            if not params.get(name):
                raise StripeError(400, f"Missing required param: {name}.", param=name)
        if params.get("mode") != "payment":
            raise StripeError(400, "This fake plays mode=payment only.", param="mode")
        items = params["line_items"]
        if not isinstance(items, list) or len(items) != 1:
            raise StripeError(400, "Exactly one line item, please.", param="line_items")
        price = items[0].get("price_data") or {}
        try:
            unit_amount = int(price["unit_amount"])
            quantity = int(items[0].get("quantity", "1"))
        except (KeyError, ValueError):
            raise StripeError(400, "Invalid integer.", param="line_items[0]") from None
        currency = price.get("currency", "")
        if len(currency) != 3 or unit_amount < 1:
            raise StripeError(400, "Invalid currency or amount.", param="line_items[0]")
        session_id = _id("cs")
        now = int(time.time())
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": unit_amount * quantity,
            "amount_total": unit_amount * quantity,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": currency,
            "customer": None,
            "customer_email": params.get("customer_email"),
            "expires_at": now + 24 * 3600,
            "livemode": False,
            "metadata": params.get("metadata") or {},
            "mode": "payment",
            "payment_intent": None,
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "url": f"{self.base_url}/c/pay/{session_id}",
            # Not Stripe's field: what the line item was, for the tests to check.
            "_line_item_name": (price.get("product_data") or {}).get("name"),
        }
        with self._lock:
            self.sessions[session_id] = session
        return 200, copy.deepcopy(session)

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            rows = [
                copy.deepcopy(s)
                for s in self.sessions.values()
                if all(s.get(k) == v for k, v in query.items() if k in ("payment_intent",))
            ]
        limit = int(query.get("limit", "10"))
        return {
            "object": "list",
            "data": rows[:limit],
            "has_more": len(rows) > limit,
            "url": "/v1/checkout/sessions",
        }

    # ------------------------------------------------------------------ Stripe's side

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }

    def _paying(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        if session["payment_intent"] is None:
            session["payment_intent"] = _id("pi")
            self.charges[session_id] = {
                "id": _id("ch"),
                "object": "charge",
                "amount": session["amount_total"],
                "amount_captured": session["amount_total"],
                "amount_refunded": 0,
                "currency": session["currency"],
                "paid": True,
                "payment_intent": session["payment_intent"],
                "refunded": False,
                "disputed": False,
                "metadata": {},
            }
        return session

    def complete(self, session_id: str, *, paid: bool = True) -> dict[str, Any]:
        """The buyer finishes Checkout: paid now (a card), or `paid=False` for a payment
        that settles later (a bank debit): `checkout.session.completed`."""
        with self._lock:
            session = self._paying(session_id)
            session["status"] = "complete"
            session["payment_status"] = "paid" if paid else "unpaid"
            return self.event("checkout.session.completed", session)

    def async_succeed(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self._paying(session_id)
            session["status"] = "complete"
            session["payment_status"] = "paid"
            return self.event("checkout.session.async_payment_succeeded", session)

    def async_fail(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self._paying(session_id)
            session["status"] = "complete"
            session["payment_status"] = "unpaid"
            return self.event("checkout.session.async_payment_failed", session)

    def expire(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            session = self.sessions[session_id]
            session["status"] = "expired"
            return self.event("checkout.session.expired", session)

    def refund(self, session_id: str, amount: int | None = None) -> dict[str, Any]:
        """Refund `amount` more (all that is left by default): `charge.refunded`, whose
        charge carries the cumulative `amount_refunded`."""
        with self._lock:
            charge = self.charges[session_id]
            left = charge["amount"] - charge["amount_refunded"]
            charge["amount_refunded"] += left if amount is None else min(amount, left)
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            return self.event("charge.refunded", charge)

    def dispute(
        self, session_id: str, amount: int | None = None, *, inquiry: bool = False
    ) -> dict[str, Any]:
        """The cardholder disputes the charge: `charge.dispute.created`. An `inquiry` is
        Stripe's early warning, which withdraws no funds (status `warning_needs_response`)."""
        with self._lock:
            charge = self.charges[session_id]
            charge["disputed"] = True
            dispute = {
                "id": _id("dp"),
                "object": "dispute",
                "amount": charge["amount"] if amount is None else amount,
                "charge": charge["id"],
                "currency": charge["currency"],
                "payment_intent": charge["payment_intent"],
                "reason": "fraudulent",
                "status": "warning_needs_response" if inquiry else "needs_response",
            }
            self.disputes[session_id] = dispute
            return self.event("charge.dispute.created", dispute)

    def escalate_dispute(self, session_id: str) -> dict[str, Any]:
        """An inquiry becomes a chargeback: funds are withdrawn
        (`charge.dispute.funds_withdrawn`)."""
        with self._lock:
            dispute = self.disputes[session_id]
            dispute["status"] = "needs_response"
            return self.event("charge.dispute.funds_withdrawn", dispute)

    def close_dispute(self, session_id: str, *, won: bool) -> dict[str, Any]:
        """The bank decides: `charge.dispute.closed` with status `won` (funds reinstated)
        or `lost`."""
        with self._lock:
            dispute = self.disputes[session_id]
            dispute["status"] = "won" if won else "lost"
            return self.event("charge.dispute.closed", dispute)

    def signed(self, event: dict[str, Any]) -> tuple[bytes, str]:
        body = json.dumps(event).encode()
        return body, signature_header(body, self.webhook_secret)

    # ------------------------------------------------------------------ hosted page

    def pay_page(self, session_id: str) -> tuple[int, str]:
        with self._lock:
            session = self.sessions.get(session_id)
        if session is None or session["status"] != "open":
            return 404, "<h1>This checkout session is no longer available.</h1>"
        amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
        name = html.escape(session.get("_line_item_name") or "")
        return 200, (
            "<!doctype html><title>Fake Stripe Checkout</title>"
            f"<h1>Pay {amount}</h1><p>{name}</p>"
            f'<form method="post" action="/c/pay/{session_id}">'
            '<input name="card" value="4242 4242 4242 4242" aria-label="Card number">'
            '<button type="submit">Pay</button></form>'
            f'<p><a href="/c/pay/{session_id}/cancel">Back</a></p>'
        )

    def pay(self, session_id: str) -> str:
        """The hosted page's Pay button: completes the session, delivers the signed event
        to `webhook_url` when set, and returns where the buyer is sent (success_url)."""
        event = self.complete(session_id)
        if self.webhook_url:
            body, header = self.signed(event)
            answer = httpx.post(
                self.webhook_url,
                content=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": header},
                timeout=30,
                trust_env=False,
            )
            self.delivered.append((event, answer.status_code))
        return self.sessions[session_id]["success_url"]


class _Handler(BaseHTTPRequestHandler):
    stripe: FakeStripe
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: str | bytes, content_type: str, **headers: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def _handle(self, method: str) -> None:
        body = self._body()
        path = urlsplit(self.path).path
        if path.startswith("/c/pay/"):
            self._hosted(method, path)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, answer = self.stripe.api(method, self.path, headers, body)
        except StripeError as exc:
            status, answer = exc.status, exc.body
        self._reply(status, json.dumps(answer), "application/json", **{"Request-Id": _id("req")})

    def _hosted(self, method: str, path: str) -> None:
        parts = path.strip("/").split("/")  # c, pay, id[, cancel]
        session_id = parts[2] if len(parts) >= 3 else ""
        if len(parts) == 4 and parts[3] == "cancel":
            session = self.stripe.sessions.get(session_id)
            if session is None:
                self._reply(404, "not found", "text/plain")
                return
            self._reply(303, "", "text/plain", Location=session["cancel_url"])
        elif method == "POST" and session_id in self.stripe.sessions:
            self._reply(303, "", "text/plain", Location=self.stripe.pay(session_id))
        else:
            status, page = self.stripe.pay_page(session_id)
            self._reply(status, page, "text/html; charset=utf-8")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")
