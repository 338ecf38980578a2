"""The one rule for "is this address public", and the one way to fetch a URL someone gave
us (a callback URL, a video URL named by fal's result or webhook).

Server-side request forgery is refused in three places, all built on the same rule:

- `check_url` / `check_public_url`: at validation time, without DNS (accepting a request
  never waits on the network). The scheme, the host's shape, an optional host allow-list,
  and, for a literal address, the address itself.
- `resolve_public`: at connect time. The name is resolved once and every address it has
  must be public; those addresses are the only ones the connection may use.
- `open_url` / `stream`: the fetch. httpx with `trust_env=False` (no proxy from the
  environment may carry the request elsewhere), connecting through `_CheckedBackend`,
  which resolves and checks at the moment of each TCP connect and connects to exactly the
  checked address, while the URL keeps the name (Host header and TLS SNI/certificate name
  stay right). So a DNS answer that changes between check and connect (rebinding) gains
  nothing. Redirects are never followed by httpx: each hop is re-checked (allow-list and
  address) and there are at most `max_redirects` of them. One deadline covers connect,
  TLS, writes and every read of every hop: a server that trickles a byte every few
  seconds is cut off when the deadline passes, not when it pauses. `stream` stops at a
  byte cap.

The address rule refuses loopback, private, link-local, shared (CGNAT), reserved,
documentation, multicast and unspecified addresses, and IPv6 forms that carry an IPv4
address or reach one through a translator: IPv4-mapped and -translated, IPv4-compatible
(`::a.b.c.d`), NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`), 6to4 and Teredo with a
non-public IPv4 inside, site-local (`fec0::/10`) and unique-local. Names: `localhost`,
internal suffixes, single-label names, and numeric IPv4 shortcuts (`2130706433`,
`0x7f.1`, `127.1`) that the resolver would quietly turn into an address.

`PRIVATE_URLS_ALLOWED` (tests, closed networks) turns the address and name rule off; the
scheme, allow-list, redirect limit, deadline and byte cap stay.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NOT_PUBLIC = "The URL must point to a public internet address."
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa", ".localdomain")

# Written out rather than left to `is_global`, whose lists change between Python versions
# (3.11 calls NAT64, IPv4-compatible and site-local addresses global).
_REFUSED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (CGNAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
_REFUSED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback and IPv4-compatible ::a.b.c.d
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64: the translator is inside our network
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # SRv6 segment identifiers
        "fc00::/7",  # unique-local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated, still routed inside some networks)
        "ff00::/8",  # multicast
    )
)
_TEREDO = ipaddress.IPv6Network("2001::/32")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
# A last label that is a number makes the whole name an IPv4 address to resolvers and
# browsers (WHATWG URL): 2130706433, 0x7f.1, 127.1, 0177.0.0.1 all mean 127.0.0.1.
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+")


class UrlRefused(Exception):
    """The URL may not be fetched. The message is safe to show to the user who gave it;
    `retryable` is True when the refusal may pass later (a name that did not resolve)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ResponseTooLarge(Exception):
    """The response is over the byte cap."""


# --- The rule ------------------------------------------------------------------------------


def is_public_address(address: IPAddress) -> bool:
    """True for an address anyone on the internet could reach, and nothing inside ours."""
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not any(address in net for net in _REFUSED_V4)
    if any(address in net for net in _REFUSED_V6):
        return False
    # In these networks, `sixtofour` and `teredo` are never None.
    if address in _SIXTOFOUR and (embedded := address.sixtofour) is not None:
        return is_public_address(embedded)
    if address in _TEREDO and (teredo := address.teredo) is not None:
        return address.is_global and is_public_address(teredo[1])
    return address.is_global


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _host_refusal(host: str) -> str | None:
    """Why `host` (lower case, ASCII, no brackets or trailing dot) is not public, or None.
    Needs no DNS: a name passes if nothing about it says it is internal."""
    address = _literal(host)
    if address is not None:
        return None if is_public_address(address) else NOT_PUBLIC
    if not _HOSTNAME.fullmatch(host):
        return "Enter a valid host name."
    if _NUMERIC_LABEL.fullmatch(host.rpartition(".")[2]):
        return NOT_PUBLIC  # an IPv4 address in a shortcut form
    if "." not in host or host == "localhost" or host.endswith(_INTERNAL_SUFFIXES):
        return NOT_PUBLIC
    return None


def is_public_host(host: str) -> bool:
    """The name or literal address `host` may be public (names are not resolved here)."""
    return _host_refusal(_normal_host(host)) is None


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """`host` is one of `allowed_hosts` or a subdomain of a name among them."""
    host = _normal_host(host)
    for allowed in allowed_hosts:
        allowed = _normal_host(allowed)
        if host == allowed or (_literal(allowed) is None and host.endswith("." + allowed)):
            return True
    return False


def _url_host(url: httpx.URL) -> str:
    # The A-label form httpx will send and we will resolve: checking a different spelling
    # than the one resolved (IDNA 2003 vs 2008, full-width dots) would be a bypass.
    return _normal_host(url.raw_host.decode("ascii"))


def _parse(
    url: str | httpx.URL, schemes: tuple[str, ...], allowed_hosts: Iterable[str] | None
) -> tuple[httpx.URL, str]:
    valid = f"Enter a valid {' or '.join(schemes)} URL."
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise UrlRefused(valid) from None
    if parsed.scheme not in schemes or not parsed.raw_host:
        raise UrlRefused(valid)
    host = _url_host(parsed)
    if allowed_hosts is not None and not host_allowed(host, allowed_hosts):
        raise UrlRefused(f"The host {host!r} is not one we fetch from.")
    return parsed, host


def _private_allowed(asked: bool | None) -> bool:
    return settings.PRIVATE_URLS_ALLOWED if asked is None else asked


def check_url(
    url: str | httpx.URL,
    *,
    schemes: tuple[str, ...] = ("https",),
    allowed_hosts: Iterable[str] | None = None,
    private_allowed: bool | None = None,
) -> httpx.URL:
    """Validation-time check, no DNS: the scheme, the allow-list, and (unless private
    addresses are allowed: `private_allowed`, by default PRIVATE_URLS_ALLOWED) the host's
    name or literal address. Raises UrlRefused; returns the parsed URL."""
    parsed, host = _parse(url, schemes, allowed_hosts)
    reason = None if _private_allowed(private_allowed) else _host_refusal(host)
    if reason:
        raise UrlRefused(reason)
    return parsed


def check_public_url(url: str, *, schemes: tuple[str, ...], allow_private: bool = False) -> str:
    """Form and serializer validation: a well-formed URL with one of `schemes`, not aimed at
    loopback or private networks (unless allowed). Raises django's ValidationError with a
    message for the user."""
    if len(url) > 2048:
        raise ValidationError("The URL is too long (2048 characters at most).")
    try:
        URLValidator(schemes=list(schemes))(url)
    except ValidationError:
        raise ValidationError(f"Enter a valid {' or '.join(schemes)} URL.") from None
    try:
        _, host = _parse(url, schemes, None)
        reason = None if allow_private else _host_refusal(host)
    except UrlRefused as exc:
        reason = str(exc)
    if reason:
        raise ValidationError(reason)
    return url


def resolve_public(host: str, port: int) -> list[str]:
    """Connect-time check: resolve `host` and require every address to be public. Returns
    the addresses (to connect to exactly these). Raises UrlRefused (retryable when the
    name did not resolve)."""
    host = _normal_host(host)
    reason = _host_refusal(host)
    if reason:
        raise UrlRefused(reason)
    address = _literal(host)
    if address is not None:
        return [str(address)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UrlRefused(f"The host {host!r} could not be resolved.", retryable=True) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses or not all(is_public_address(_resolved(a)) for a in addresses):
        raise UrlRefused(NOT_PUBLIC)
    return addresses


def _resolved(address: str) -> IPAddress:
    return ipaddress.ip_address(address.partition("%")[0])


# --- The fetch -------------------------------------------------------------------------------


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def bound(self, timeout: float | None, error: type[Exception]) -> float:
        """`timeout` cut to what is left of the deadline; raises `error` when nothing is."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise error(f"total deadline of {self.seconds:g} s exceeded")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the fetch's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        timeout = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, timeout), self._deadline
        )

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _CheckedBackend(httpcore.NetworkBackend):
    """httpcore's TCP connect, through `resolve_public` (unless private URLs are allowed)
    and under the deadline."""

    def __init__(self, deadline: _Deadline, *, check: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline
        self._check = check

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        # UrlRefused is not httpcore's: httpcore and httpx let it through unchanged. The
        # lookup itself is bounded by the system resolver; a lookup that ends past the
        # deadline fails the connect below.
        addresses = resolve_public(host, port) if self._check else [host]
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    address,
                    port,
                    timeout=self._deadline.bound(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc  # try the next checked address, like create_connection
                continue
            return _DeadlineStream(stream, self._deadline)
        assert failure is not None
        raise failure

    def connect_unix_socket(self, *args, **kwargs):  # pragma: no cover
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:  # pragma: no cover
        self._inner.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's transport over `_CheckedBackend`. httpx takes no network backend, so the
    pool it builds is replaced by an identical one with ours (no proxy, no retries)."""

    def __init__(self, backend: _CheckedBackend) -> None:
        context = httpx.create_ssl_context()  # certifi, or SSL_CERT_FILE as fal-client uses
        super().__init__(verify=context, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=context, max_connections=4, network_backend=backend
        )


@contextmanager
def open_url(
    url: str,
    *,
    method: str = "GET",
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    schemes: tuple[str, ...] = ("https",),
    allowed_hosts: Iterable[str] | None = None,
    deadline_seconds: float,
    max_redirects: int = 0,
    private_allowed: bool | None = None,
) -> Iterator[httpx.Response]:
    """Send one request to a URL someone gave us and yield the streamed response (the body
    is not read). With `max_redirects` 0 a redirect is the answer; otherwise each hop is
    re-checked and more than `max_redirects` hops is refused. Raises UrlRefused, or
    httpx's errors (a timeout when the deadline passes, before or while reading)."""
    deadline = _Deadline(deadline_seconds)
    private_allowed = _private_allowed(private_allowed)
    backend = _CheckedBackend(deadline, check=not private_allowed)
    timeout = httpx.Timeout(deadline_seconds)
    with httpx.Client(
        transport=_CheckedTransport(backend), trust_env=False, timeout=timeout
    ) as client:
        target: str | httpx.URL = url
        for hop in range(max_redirects + 1):
            check_url(
                target,
                schemes=schemes,
                allowed_hosts=allowed_hosts,
                private_allowed=private_allowed,
            )
            request = client.build_request(method, target, content=content, headers=headers)
            response = client.send(request, stream=True, follow_redirects=False)
            if not (max_redirects and response.is_redirect):
                break
            location = response.headers.get("location", "")
            response.close()
            if hop == max_redirects:
                raise UrlRefused(f"More than {max_redirects} redirects.")
            target = response.url.join(location)
            if response.status_code in (301, 302, 303) and method != "HEAD":
                method, content = "GET", None
        try:
            yield response
        finally:
            response.close()


@contextmanager
def stream(
    url: str,
    *,
    max_bytes: int,
    deadline_seconds: float,
    allowed_hosts: Iterable[str] | None = None,
    max_redirects: int = 3,
    private_allowed: bool | None = None,
) -> Iterator[Iterator[bytes]]:
    """GET an https URL and yield its body as chunks, read as they are consumed, under the
    deadline. Raises (at once, or while the chunks are read) ResponseTooLarge past
    `max_bytes`, UrlRefused, or httpx's errors (a non-2xx answer is
    httpx.HTTPStatusError)."""
    with open_url(
        url,
        headers={"Accept-Encoding": "identity"},  # the bytes as stored, no decoding bomb
        allowed_hosts=allowed_hosts,
        deadline_seconds=deadline_seconds,
        max_redirects=max_redirects,
        private_allowed=private_allowed,
    ) as response:
        response.raise_for_status()
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            raise UrlRefused(f"The response is {encoding}-encoded.")
        declared = int(response.headers.get("content-length") or 0)
        if declared > max_bytes:
            raise ResponseTooLarge(f"The response is {declared} bytes (limit {max_bytes}).")
        yield _capped(response.iter_raw(chunk_size=256 * 1024), max_bytes)


def _capped(chunks: Iterator[bytes], max_bytes: int) -> Iterator[bytes]:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise ResponseTooLarge(f"The response is over the limit of {max_bytes} bytes.")
        yield chunk
