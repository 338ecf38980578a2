"""Threaded HTTPS/1.1 server used by the fake (stdlib only).

TLS handshakes run in the per-connection thread (not in the accept loop), connections
are kept alive as httpx expects, and the listen backlog is large enough for a
benchmark opening hundreds of connections at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str  # unquoted, no query
    query: dict[str, str]
    headers: dict[str, str]  # original case; look up with header()
    raw: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers.items():
            if key.lower() == name:
                return value
        return None

    def json(self) -> Any:
        """Parsed body; None if empty or not JSON."""
        if not self.raw:
            return None
        try:
            return json.loads(self.raw)
        except ValueError:
            return None


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # drop: close without answering (the work is done); reset: same, nothing done
    action: Literal["send", "drop", "reset"] = "send"
    delay: float = 0.0  # seconds to stall before answering
    before_send: Callable[[], None] | None = None  # e.g. deliver a webhook first
    after_send: Callable[[], None] | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


class App(Protocol):
    def handle(self, request: Request) -> Reply: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply carries Content-Length
    server_version = "fakefal"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this
    # Headers and body go out in separate writes; with Nagle on, a keep-alive client
    # waits ~40 ms for the delayed ACK on every response.
    disable_nagle_algorithm = True
    server: TLSServer

    def setup(self) -> None:
        conn: ssl.SSLSocket = self.request
        conn.settimeout(10)
        conn.do_handshake()
        super().setup()
        self.server.track(conn, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        request = Request(self.command, unquote(split.path), query, dict(self.headers), raw)
        try:
            reply = self.server.app.handle(request)
        except Exception:
            log.exception("fakefal: handler crashed on %s %s", self.command, self.path)
            reply = Reply.json(500, {"detail": "fakefal internal error"})
        if reply.before_send is not None:
            reply.before_send()
        if reply.action != "send":
            self.close_connection = True
            if reply.action == "reset":
                # RST instead of FIN, like a proxy or a dying process.
                linger = struct.pack("ii", 1, 0)
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            return
        if reply.delay:
            time.sleep(reply.delay)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if "Content-Length" not in reply.headers:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True  # e.g. the client gave up on a slow reply
        if reply.after_send is not None:
            self.wfile.flush()
            reply.after_send()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 2048

    def __init__(self, address: tuple[str, int], ssl_context: ssl.SSLContext, app: App) -> None:
        self.ssl_context = ssl_context
        self.app = app
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        wrapped = self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, addr

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conn_lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Cut every open keep-alive connection (what clients see when fal dies)."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-handshake or mid-keep-alive are normal in chaos tests.
        log.debug("fakefal: connection error from %s", client_address, exc_info=True)
