"""Abuse limits on the account pages: who the client is, how many failed logins an account
or an address may have (django-axes counts them and locks out), and how many password
reset emails may go out per hour (counted here, in the cache, silently). django-allauth's
rate limits (ACCOUNT_RATE_LIMITS: signups, logins, reset and confirmation requests) count
clients with `client_address` too (accounts.adapters.AccountAdapter.get_client_ip).

One definition of the client's address serves both: `client_address`, which trusts
`X-Forwarded-For` only as far as `TRUSTED_PROXY_COUNT` says (an attacker sets that header
to whatever they like, so by default it is ignored).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User

logger = logging.getLogger(__name__)

# An IPv6 client usually holds a whole /64: counting single addresses would let it rotate.
IPV6_PREFIX = 64


def client_address(request: HttpRequest) -> str | None:
    """The address that requests are counted under: `REMOTE_ADDR`, or, behind
    `TRUSTED_PROXY_COUNT` reverse proxies, the address the outermost of them saw (each proxy
    appends the address it received from, so the Nth entry from the right is the one no
    client can forge). IPv6 addresses stand for their /64.

    django-axes calls this too (`AXES_CLIENT_IP_CALLABLE`).
    """
    meta = getattr(request, "META", {})
    remote = _normalised(meta.get("REMOTE_ADDR"))
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [
            part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
        ]
        if len(forwarded) >= proxies:
            return _normalised(forwarded[-proxies]) or remote
    return remote


def _normalised(address: str | None) -> str | None:
    # Anything that is not an address counts as none (axes stores it in an inet column).
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False).network_address)
    return str(ip)


# --- Failed logins (django-axes) ------------------------------------------------------------


def login_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """`AXES_USERNAME_CALLABLE`: the account a login attempt is counted against, whether it
    names it by username (any letter case, as allauth and the admin accept it) or by email
    address, so that neither spelling buys more guesses. A name that matches no account is
    counted as written, lower-cased."""
    credentials = credentials or {}
    post = getattr(request, "POST", {})
    login = (
        credentials.get("username")
        or credentials.get("email")
        or post.get("login")
        or post.get("username")
        or ""
    ).strip()
    if not login:
        return None
    users = User._default_manager
    user = users.filter(username__iexact=login).only("username").first()
    if user is None and "@" in login:
        user = users.filter(email__iexact=login).only("username").first()
    return user.username if user is not None else login.lower()


def login_failure_limit(request: HttpRequest, credentials: dict | None) -> int:
    """`AXES_FAILURE_LIMIT`: axes locks out when the largest failure count among its lockout
    parameters (the username, the address) reaches one limit, but an address may fail more
    often than an account (one office, many people mistyping). So the answer is the
    account's limit once the account has reached it, and the address's limit otherwise:
    locked iff account failures >= LOGIN_FAILURE_LIMIT or address failures >=
    LOGIN_ADDRESS_FAILURE_LIMIT.
    """
    per_account = settings.LOGIN_FAILURE_LIMIT
    per_address = max(settings.LOGIN_ADDRESS_FAILURE_LIMIT, per_account)
    username = get_client_username(request, credentials)
    if username and _account_failures(request, username) >= per_account:
        return per_account
    return per_address


def _account_failures(request: HttpRequest, username: str) -> int:
    # The same count as axes's database handler makes for the "username" parameter.
    attempts = AccessAttempt.objects.filter(username=username)
    cool_off = get_cool_off(request)
    if cool_off is not None:
        since = getattr(request, "axes_attempt_time", None) or timezone.now()
        attempts = attempts.filter(attempt_time__gte=since - cool_off)
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def lockout_minutes() -> int:
    cool_off = get_cool_off()
    return math.ceil(cool_off / timedelta(minutes=1)) if cool_off else 0


# --- Password reset emails and signups (the cache) ------------------------------------------


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(text: str | None) -> Rate | None:
    """`"3/hour"` (also `/h`, `/min`, `/day`, `/sec`, as DRF writes its rates); empty or
    `None` means no limit."""
    text = (text or "").strip()
    if not text:
        return None
    count, _, period = text.partition("/")
    try:
        return Rate(int(count), PERIODS[period.strip().lower()[:1]])
    except (ValueError, KeyError):
        raise ImproperlyConfigured(
            f"Bad rate {text!r}: write it as a number per second, minute, hour or day, e.g. 5/hour."
        ) from None


def hit(scope: str, ident: str | None, rate_text: str | None) -> bool:
    """Count one event of `scope` for `ident` (an address, an email address) and say
    whether it is within `rate_text`; False means the event must not happen.

    Fixed windows of the rate's period, counted with the cache's `add` + `incr`, which are
    atomic on Redis and in-process memory. The database cache's `incr` is a read then a
    write (concurrent requests may slip one or two past) that also resets the key's
    timeout, hence the `touch`.
    """
    rate = parse_rate(rate_text)
    if rate is None:
        return True
    now = time.time()
    window = int(now // rate.seconds)
    ttl = math.ceil((window + 1) * rate.seconds - now) + 1
    digest = hashlib.sha256((ident or "").encode()).hexdigest()[:32]
    key = f"limits:{scope}:{window}:{digest}"
    cache.add(key, 0, ttl)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between the add and the incr
        cache.set(key, 1, ttl)
        count = 1
    cache.touch(key, ttl)
    return count <= rate.count


def password_reset_allowed(request: HttpRequest, email: str) -> bool:
    """At most PASSWORD_RESET_CLIENT_RATE requests from one address and
    PASSWORD_RESET_RATE emails to one address. Every request counts, whether an account
    uses the address or not, so the limit says nothing about which addresses exist."""
    address = client_address(request)
    if not hit("password_reset_client", address, settings.PASSWORD_RESET_CLIENT_RATE):
        logger.warning("event=password_reset_limited by=client address=%s", address)
        return False
    if not hit("password_reset_email", email.strip().lower(), settings.PASSWORD_RESET_RATE):
        logger.warning("event=password_reset_limited by=email address=%s", address)
        return False
    return True
