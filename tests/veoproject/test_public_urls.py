"""The one rule for "is this address public" (veoproject/public_urls.py), against hostile
spellings of internal addresses, and the fetch that applies it at connect time."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from django.core.exceptions import ValidationError

from tests.security.internet import answer, internet, servers  # noqa: F401
from veoproject import public_urls
from veoproject.public_urls import UrlRefused


@pytest.fixture(autouse=True)
def _private_urls_refused(settings):
    settings.PRIVATE_URLS_ALLOWED = False


REFUSED_ADDRESSES = [
    "0.0.0.0",
    "0.1.2.3",
    "10.1.2.3",
    "100.64.0.1",  # CGNAT
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.168.0.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::7f00:1",  # IPv4-compatible ::127.0.0.1
    "::a9fe:a9fe",  # ::169.254.169.254
    "::808:808",  # IPv4-compatible, even of a public address: nothing routes it
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:8.8.8.8",
    "::ffff:0:a00:1",  # IPv4-translated ::ffff:0:10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::808:808",  # NAT64 of anything: the translator sits in our network
    "64:ff9b:1::a9fe:a9fe",
    "100::1",
    "2001:db8::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo of 127.0.0.1
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",  # site-local
    "feff::1",
    "ff02::1",
]
PUBLIC_ADDRESSES = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "2002:808:808::1"]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_internal_addresses_are_not_public(address):
    assert not public_urls.is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_public(address):
    assert public_urls.is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1./",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[fec0::1]/",
        "http://[fd00::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/",  # Alibaba's metadata, in CGNAT space
        "http://localhost/",
        "http://LOCALHOST./",
        "http://api.localhost/",
        "http://printer.local/",
        "http://metadata.google.internal/",
        "http://router.lan/",
        "http://nas.home.arpa/",
        "http://intranet/",  # a single label resolves through the search domains
        "http://user:pw@127.0.0.1/",
        "http://example.com@127.0.0.1/",
        "http://127\u30020\u30020\u30021/",  # ideographic full stops, as IDNA maps them
        "http://127\uff0e0\uff0e0\uff0e1/",  # full-width full stops
        # full-width "localhost": socket's IDNA 2003 codec would map it to localhost
        "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
        "http://127%2e0%2e0%2e1/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http:///path-only",
        "not a url",
    ],
)
def test_check_url_refuses_internal_and_odd_urls(url):
    with pytest.raises(UrlRefused):
        public_urls.check_url(url, schemes=("http", "https"))


NUMERIC_SHORTCUTS = [
    "2130706433",  # 127.0.0.1 as one number
    "0x7f000001",
    "0x7f.1",
    "127.1",
    "127.0.1",
    "0177.0.0.1",  # octal
    "017700000001",
    "0",
    "2852039166",  # 169.254.169.254
    "0xa9.0xfe.0xa9.0xfe",
]


@pytest.mark.parametrize("host", NUMERIC_SHORTCUTS)
def test_numeric_ipv4_shortcuts_do_not_slip_through(host):
    """The resolver turns these into internal addresses (the danger is real on this very
    machine), while neither ipaddress nor httpx calls them addresses."""
    resolved = socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)[0][4][0]
    assert not public_urls.is_public_address(ipaddress.ip_address(resolved))
    with pytest.raises(UrlRefused):
        public_urls.check_url(f"http://{host}/", schemes=("http", "https"))
    with pytest.raises(UrlRefused):
        public_urls.resolve_public(host, 80)
    with pytest.raises(ValidationError):
        public_urls.check_public_url(f"http://{host}/", schemes=("http", "https"))


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://hooks.example.com:8443/a?b=c",
        "http://93.184.216.34/x",
        "https://[2606:4700:4700::1111]/x",
        "https://xn--nxasmq6b.com/",
        "https://βόλοσ.com/",
    ],
)
def test_public_urls_pass_the_validation_time_check(url):
    assert public_urls.check_url(url, schemes=("http", "https"))


def test_the_validation_time_check_never_resolves(monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("accept must not wait on DNS")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    public_urls.check_url("https://hooks.example.com/x", schemes=("https",))
    public_urls.check_public_url("https://images.example.com/a.png", schemes=("https",))


def test_private_urls_allowed_turns_the_address_rule_off_but_not_the_allow_list(settings):
    settings.PRIVATE_URLS_ALLOWED = True
    assert public_urls.check_url("http://127.0.0.1:8000/x", schemes=("http",))
    assert public_urls.check_url("https://localhost/x", allowed_hosts=["localhost"])
    with pytest.raises(UrlRefused):
        public_urls.check_url("https://127.0.0.1/x", allowed_hosts=["fal.media"])
    with pytest.raises(UrlRefused):
        public_urls.check_url("http://127.0.0.1/x", schemes=("https",))


def test_image_urls_stay_public_even_when_private_urls_are_allowed(settings):
    settings.PRIVATE_URLS_ALLOWED = True
    with pytest.raises(ValidationError):
        public_urls.check_public_url("https://127.0.0.1/a.png", schemes=("https",))
    assert public_urls.check_public_url(
        "http://127.0.0.1/cb", schemes=("http", "https"), allow_private=True
    )


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("fal.media", True),
        ("v3.fal.media", True),
        ("V3.FAL.MEDIA.", True),
        ("evilfal.media", False),
        ("fal.media.evil.com", False),
        ("fal.mediaa", False),
        ("127.0.0.1", False),
    ],
)
def test_media_hosts_match_themselves_and_their_subdomains(host, allowed):
    assert public_urls.host_allowed(host, ["fal.media", "fal.run"]) is allowed


def test_an_allowed_address_matches_only_itself():
    assert public_urls.host_allowed("127.0.0.1", ["127.0.0.1"])
    assert not public_urls.host_allowed("x.127.0.0.1", ["127.0.0.1"])


# --- Connect time: DNS answers ------------------------------------------------------------------


def test_every_address_of_a_name_must_be_public(internet):  # noqa: F811
    internet.answer("mixed.example.com", ["93.184.216.34", "10.0.0.7"])
    internet.answer("v6.example.com", ["2606:4700:4700::1111", "64:ff9b::a9fe:a9fe"])
    internet.answer("fine.example.com", ["93.184.216.34", "2606:4700:4700::1111"])
    with pytest.raises(UrlRefused) as refused:
        public_urls.resolve_public("mixed.example.com", 443)
    assert not refused.value.retryable
    with pytest.raises(UrlRefused):
        public_urls.resolve_public("v6.example.com", 443)
    assert public_urls.resolve_public("fine.example.com", 443) == [
        "93.184.216.34",
        "2606:4700:4700::1111",
    ]


def test_a_name_that_does_not_resolve_is_refused_as_retryable(monkeypatch):
    def fails(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fails)
    with pytest.raises(UrlRefused) as refused:
        public_urls.resolve_public("hooks.example.com", 443)
    assert refused.value.retryable


def test_a_dns_answer_that_changes_after_the_check_does_not_move_the_connection(
    internet,  # noqa: F811
    servers,  # noqa: F811
):
    """Rebinding: the name answers a public address once, then an internal one. The
    connection goes to the address that was checked, and DNS is asked once."""
    public = servers(lambda request: [answer(200, b"public")])
    inside = servers(lambda request: [answer(200, b"metadata secret")])
    internet.answer("hooks.example.com", ["93.184.216.34"], ["169.254.169.254"])
    internet.route("93.184.216.34", public)
    internet.route("169.254.169.254", inside)

    with public_urls.open_url(
        "http://hooks.example.com/cb", schemes=("http",), deadline_seconds=5
    ) as response:
        assert response.read() == b"public"
    assert internet.lookups == ["hooks.example.com"]
    assert internet.connected == ["93.184.216.34"]
    assert inside.requests == []


def test_a_dns_answer_that_turns_private_is_refused_at_connect(internet, servers):  # noqa: F811
    inside = servers(lambda request: [answer(200, b"metadata secret")])
    internet.answer("hooks.example.com", ["169.254.169.254"])
    internet.route("169.254.169.254", inside)
    public_urls.check_url("http://hooks.example.com/cb", schemes=("http",))  # accepted
    with (
        pytest.raises(UrlRefused),
        public_urls.open_url("http://hooks.example.com/cb", schemes=("http",), deadline_seconds=5),
    ):
        pass
    assert internet.connected == []
    assert inside.connections == 0
