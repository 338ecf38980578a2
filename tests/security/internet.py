"""The internet, as far as an SSRF test needs it, on one machine.

`FakeInternet` replaces the machine's edge (socket.getaddrinfo and
socket.create_connection): the names a test chooses answer with the addresses it chooses
(one answer per lookup, the last one repeating, so DNS can change between lookups), and a
connection to a chosen address reaches a local server instead. Everything else resolves
and connects as usual. `Server` is a tiny HTTP(S) server whose answers a test scripts
byte by byte (a pause is a float), so it can redirect, trickle or overflow.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

Piece = bytes | float  # bytes are sent, a float is a pause in seconds


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    reason = {200: "OK", 301: "Moved", 302: "Found", 404: "Not Found"}.get(status, "X")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def redirect(location: str) -> list[Piece]:
    return [answer(302, headers={"Location": location})]


def trickle(data: bytes, every: float) -> Iterator[Piece]:
    for byte in data:
        yield bytes([byte])
        yield every


class Server:
    """Serves each connection with `respond(request)`: an iterable of bytes and pauses."""

    def __init__(
        self,
        respond: Callable[[Request], Iterable[Piece]],
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.respond = respond
        self.tls = tls
        self.requests: list[Request] = []
        self.connections = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), contextlib.closing(conn):
            conn.settimeout(10)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
            while len(body) < length:
                body += conn.recv(65536)
            request = Request(method, path, headers, body)
            self.requests.append(request)
            for piece in self.respond(request):
                if self._stop.is_set():
                    return
                if isinstance(piece, float):
                    time.sleep(piece)
                else:
                    conn.sendall(piece)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


@dataclass
class Certificates:
    """A throwaway CA trusted through SSL_CERT_FILE, and a server certificate for names."""

    server_context: ssl.SSLContext
    ca_path: str


def certificates(*names: str, directory: Path) -> Certificates:
    ca = trustme.CA()
    leaf = ca.issue_cert(*names)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf.configure_cert(context)
    ca_path = str(directory / "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    return Certificates(server_context=context, ca_path=ca_path)


@dataclass
class FakeInternet:
    """DNS answers and routes chosen by the test, at the socket module's edge."""

    dns: dict[str, list[list[str]]] = field(default_factory=dict)
    routes: dict[str, int] = field(default_factory=dict)  # address -> local port
    lookups: list[str] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)  # addresses we were asked to reach

    def answer(self, name: str, *answers: list[str]) -> None:
        """`name` answers answers[0] at the first lookup, answers[1] at the next..."""
        self.dns[name] = [list(a) for a in answers]

    def route(self, address: str, server: Server) -> None:
        self.routes[address] = server.port

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeInternet:
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.create_connection

        def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
            name = (host.decode() if isinstance(host, bytes) else str(host)).lower().rstrip(".")
            if name not in self.dns:
                return real_getaddrinfo(host, port, family, type, proto, flags)
            self.lookups.append(name)
            answers = self.dns[name]
            addresses = answers.pop(0) if len(answers) > 1 else answers[0]
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
                if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in addresses
            ]

        def create_connection(address, timeout=None, source_address=None, **kwargs):
            host, port = address[0], address[1]
            try:
                addresses = [str(ipaddress.ip_address(host))]
            except ValueError:
                addresses = [info[4][0] for info in socket.getaddrinfo(host, port)]
            failure: OSError = ConnectionRefusedError(f"no route to {host}")
            for a in addresses:
                self.connected.append(a)
                if a in self.routes:
                    return real_connect(("127.0.0.1", self.routes[a]), timeout, source_address)
                if ipaddress.ip_address(a).is_loopback:
                    return real_connect((a, port), timeout, source_address)
                failure = ConnectionRefusedError(f"no route to {a} in this test")
            raise failure

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)
        return self


@pytest.fixture
def internet(monkeypatch) -> FakeInternet:
    return FakeInternet().install(monkeypatch)


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(respond, **kwargs) -> Server:
        server = Server(respond, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def tls(monkeypatch, tmp_path) -> Callable[..., Certificates]:
    """tls(*names): a certificate for names, its CA trusted by our clients."""

    def issue(*names: str) -> Certificates:
        issued = certificates(*names, directory=Path(tempfile.mkdtemp(dir=tmp_path)))
        monkeypatch.setenv("SSL_CERT_FILE", issued.ca_path)
        return issued

    return issue
