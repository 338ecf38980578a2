"""Callbacks to integrators: POST a finished generation's JSON to its `callback_url`.

Signature: ``X-Veo-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is
HMAC-SHA256(key=the owner's webhook secret, message=f"{t}.{raw body}"). Receivers should
recompute it over the raw body, compare in constant time and reject old timestamps
(`verify_signature` does exactly that).

Delivery: `enqueue_callback` (called on commit when a generation reaches a final state)
enqueues attempt 1; each attempt is claimed by inserting its `CallbackAttempt` row
(unique per generation and attempt number), so a redelivered or duplicated task never
POSTs the same attempt twice. A failed attempt schedules the next one as a django-q2
`Schedule` of type ONCE at `next_run` (django-q2 has no delayed enqueue): the row is
durable in the database, needs no extra model field and no polling while nothing is due,
and the scheduler's 30 s tick is fine for a backoff that starts at 30 s. Backoff doubles up
to an hour, for `MAX_ATTEMPTS` attempts (about 3 hours in all); any 2xx is success,
anything else (including redirects, which are never followed) is retried.

What a broker can lose (a Redis broker is at-most-once; a worker can die mid-attempt),
`sweep_callbacks` recovers: run periodically, it re-enqueues a delivery whose next attempt
is overdue by `SWEEP_GRACE` with no schedule pending for it. The attempt claim keeps this
from ever sending an attempt twice.

Server-side request forgery: callback URLs may not point at loopback, private, link-local
or otherwise non-global addresses (unless `PRIVATE_URLS_ALLOWED`). This is checked at
accept time and again at send time, where the connection goes to the very address that
was checked (Host header and TLS SNI keep the name), so DNS rebinding gains nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
from datetime import timedelta

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from generations.models import CallbackAttempt, Generation

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
SIGNATURE_HEADER = "X-Veo-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
USER_AGENT = "veoproject-callbacks/1.0"
# How late a due attempt may be before the sweep re-enqueues it (the scheduler ticks every
# 30 s, and an attempt takes at most ~15 s).
SWEEP_GRACE = timedelta(minutes=3)
# Deliveries older than this are not swept any more (the last retry is ~3 h after the end).
SWEEP_HORIZON = timedelta(days=1)


class CallbackUrlRefused(Exception):
    """The callback URL may not be used; the message is for the user."""


# --- Address checks ----------------------------------------------------------------------


def _is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _is_public_address(embedded)
    return address.is_global and not address.is_multicast


def check_callback_url(url: str, *, resolve: bool) -> list[str]:
    """Refuse (CallbackUrlRefused) a URL that is not http(s) or aims at a non-public
    address. With `resolve`, the host name is resolved and every address it has must be
    public; the checked addresses are returned so the caller can connect to exactly them.
    Returns [] when private addresses are allowed, or when not resolving a name."""
    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise CallbackUrlRefused("Enter a valid http or https URL.") from None
    if parts.scheme not in ("http", "https") or not parts.host:
        raise CallbackUrlRefused("Enter a valid http or https URL.")
    if settings.PRIVATE_URLS_ALLOWED:
        return []
    host = parts.host
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not _is_public_address(literal):
            raise CallbackUrlRefused("The callback URL must point to a public internet address.")
        return [str(literal)]
    if host == "localhost" or host.endswith(".localhost"):
        raise CallbackUrlRefused("The callback URL must point to a public internet address.")
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise CallbackUrlRefused(f"The callback host {host!r} could not be resolved.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses or not all(
        _is_public_address(ipaddress.ip_address(a.split("%")[0])) for a in addresses
    ):
        raise CallbackUrlRefused("The callback URL must point to a public internet address.")
    return addresses


# --- Signing -------------------------------------------------------------------------------


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={sign(secret=secret, timestamp=timestamp, body=body)}"


def verify_signature(
    *,
    secret: str,
    header: str,
    body: bytes,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a receiver does: the header's v1 matches the body and t is recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (ValueError, KeyError):
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(given, sign(secret=secret, timestamp=timestamp, body=body))


# --- Delivery ------------------------------------------------------------------------------


def payload(generation: Generation) -> bytes:
    """The generation JSON, as GET /api/v1/generations/{id}/ shows it (URLs made absolute
    with PUBLIC_BASE_URL when it is set)."""
    from generations.serializers import GenerationSerializer

    data = GenerationSerializer(generation).data
    return json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def retry_delay(attempt: int) -> int:
    """Seconds to wait before `attempt` (2, 3, ...): 30 s, 1 min, 2 min, ... up to 1 h."""
    return min(FIRST_RETRY_SECONDS * 2 ** (attempt - 2), MAX_RETRY_SECONDS)


def enqueue_callback(*, generation: Generation) -> None:
    """Start delivering a final generation's callback, if it has a callback_url. Call it
    in `transaction.on_commit`; calling it twice is harmless (attempts are claimed)."""
    if not generation.callback_url or generation.callback_delivered_at is not None:
        return
    from django_q.tasks import async_task

    async_task(
        "generations.callbacks.deliver_callback",
        str(generation.pk),
        1,
        task_name=f"callback-{generation.pk}-1",
    )


def deliver_callback(generation_id: str, attempt: int = 1) -> str:
    """django-q2 task: POST attempt number `attempt` of a generation's callback. Returns
    what happened (for the task result). Safe to run twice: the attempt row is the claim."""
    generation = Generation.objects.select_related("owner").filter(pk=generation_id).first()
    if generation is None or not generation.callback_url or not generation.is_final:
        return "skipped"
    if generation.callback_delivered_at is not None:
        return "already_delivered"
    if not 1 <= attempt <= MAX_ATTEMPTS:
        return "gave_up"
    try:
        with transaction.atomic():
            record = CallbackAttempt.objects.create(
                generation=generation, attempt=attempt, url=generation.callback_url
            )
    except IntegrityError:
        return "duplicate"

    body = payload(generation)
    started = time.monotonic()
    status_code, error, retry = _post(generation, attempt, body)
    record.status_code = status_code
    record.error = error[:500]
    record.succeeded = status_code is not None and 200 <= status_code < 300
    record.duration_ms = int((time.monotonic() - started) * 1000)
    record.save(update_fields=["status_code", "error", "succeeded", "duration_ms"])
    logger.info(
        "event=callback_attempt generation=%s attempt=%s status=%s error=%r",
        generation.pk,
        attempt,
        status_code,
        error,
    )
    if record.succeeded:
        Generation.objects.filter(pk=generation.pk, callback_delivered_at__isnull=True).update(
            callback_delivered_at=timezone.now()
        )
        return "delivered"
    if retry and attempt < MAX_ATTEMPTS:
        _schedule(generation, attempt + 1)
        return "retry_scheduled"
    return "gave_up"


def _post(generation: Generation, attempt: int, body: bytes) -> tuple[int | None, str, bool]:
    """One POST; (status code or None, error text, worth retrying)."""
    url = generation.callback_url
    try:
        addresses = check_callback_url(url, resolve=True)
    except CallbackUrlRefused as exc:
        # A name that does not resolve may come back; a private address will not.
        return None, str(exc), "resolved" in str(exc)
    target = httpx.URL(url)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secret=generation.owner.webhook_secret, body=body),
        "X-Veo-Event": f"generation.{generation.public_status}",
        "X-Veo-Attempt": str(attempt),
    }
    extensions = {}
    if addresses:
        # Connect to the address we checked, not to whatever DNS says a moment later.
        headers["Host"] = target.netloc.decode("ascii").rpartition("@")[2]
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        target = target.copy_with(host=addresses[0])
    try:
        with (
            httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            # The body is not read: a receiver cannot make us download anything.
            status = response.status_code
    except httpx.HTTPError as exc:
        return None, f"{exc.__class__.__name__}: {exc}", True
    if 200 <= status < 300:
        return status, "", False
    return status, f"HTTP {status}", True


def _schedule(generation: Generation, attempt: int) -> None:
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name=f"callback:{generation.pk}:{attempt}",
        defaults={
            "func": "generations.callbacks.deliver_callback",
            "args": repr((str(generation.pk), attempt)),
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": timezone.now() + timedelta(seconds=retry_delay(attempt)),
        },
    )


def sweep_callbacks(*, batch: int = 100) -> int:
    """Re-enqueue callback deliveries that should have had their next attempt by now but
    have none pending (lost task, crashed worker). Returns how many were enqueued. Cheap
    to run every minute: one query over the recent undelivered callbacks."""
    from django_q.models import Schedule
    from django_q.tasks import async_task

    now = timezone.now()
    candidates = (
        Generation.objects.filter(
            status__in=Generation.FINAL,
            callback_delivered_at__isnull=True,
            completed_at__gte=now - SWEEP_HORIZON,
        )
        .exclude(callback_url="")
        .annotate(
            sent=Count("callback_attempts"),
            last_attempt_at=Max("callback_attempts__created_at"),
            delivered=Count("callback_attempts", filter=Q(callback_attempts__succeeded=True)),
        )
        .filter(delivered=0, sent__lt=MAX_ATTEMPTS)
        .order_by("completed_at")
        .values_list("pk", "sent", "last_attempt_at", "completed_at")[:batch]
    )
    enqueued = 0
    for pk, attempts, last_attempt_at, completed_at in candidates:
        following = attempts + 1
        since = last_attempt_at or completed_at
        delay = timedelta(seconds=retry_delay(following)) if attempts else timedelta(0)
        if since + delay + SWEEP_GRACE > now:
            continue
        if Schedule.objects.filter(name=f"callback:{pk}:{following}").exists():
            continue  # the scheduler has it; it may only be running late
        async_task(
            "generations.callbacks.deliver_callback",
            str(pk),
            following,
            task_name=f"callback-{pk}-{following}",
        )
        enqueued += 1
    if enqueued:
        logger.info("event=callbacks_swept enqueued=%s", enqueued)
    return enqueued
