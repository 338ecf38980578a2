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
or otherwise non-public addresses (unless `PRIVATE_URLS_ALLOWED`): the one rule and the one
fetch in `veoproject/public_urls.py`. The URL is checked at accept time and again at each
connect, where the connection goes to the very address that was checked (Host header and
TLS SNI keep the name), so DNS rebinding gains nothing. Each attempt has one total deadline
(`CALLBACK_TIMEOUT_SECONDS`) over connect, send and the answer's headers: a receiver that
trickles a byte every few seconds is cut off, and its body is never read.

Workers are never all busy with callbacks. A delivery holds two database leases while it
POSTs (`WorkerLease` rows, so every process and broker agree): one of
`CALLBACK_CONCURRENCY` cluster slots (`callbacks.slot.<n>`) and one of `CALLBACKS_PER_USER`
slots of its owner (`callbacks.user.<user id>.<n>`). A delivery that finds either full does
not wait: it schedules itself again a little later (a `Schedule` named
`callback:<id>:<attempt>:later:<random>`, backing off to `MAX_DEFER_SECONDS`) and frees
its worker at once, so submits, sweeps and finishes always find one, and a user with
hundreds of finished generations takes turns with everyone else instead of filling the
slots. A lease outlives the attempt's deadline by `SLOT_MARGIN` and expires by itself if
its worker dies. Leases were chosen over counting recent `CallbackAttempt` rows because
a count then insert is racy across processes, while taking a lease is one conditional
UPDATE or one INSERT on a primary key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from datetime import timedelta

import httpx
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from generations.models import CallbackAttempt, Generation, WorkerLease
from veoproject import public_urls

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
SIGNATURE_HEADER = "X-Veo-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
USER_AGENT = "veoproject-callbacks/1.0"
# How late a due attempt may be before the sweep re-enqueues it (the scheduler ticks every
# 30 s, and an attempt takes at most CALLBACK_TIMEOUT_SECONDS).
SWEEP_GRACE = timedelta(minutes=3)
# Deliveries older than this are not swept any more (the last retry is ~3 h after the end).
SWEEP_HORIZON = timedelta(days=1)
CLUSTER_SLOT = "callbacks.slot."
USER_SLOT = "callbacks.user."
# A slot's lease outlives the attempt's deadline by this much (building the payload,
# recording the attempt); past it, the slot of a worker that died is free again.
SLOT_MARGIN = timedelta(seconds=30)
# A delivery that finds no free slot tries again after this, doubling up to the maximum
# (plus jitter, so deferred deliveries do not all come back in the same scheduler tick).
DEFER_SECONDS = 10
MAX_DEFER_SECONDS = 120

# The name the serializer and older callers know; the one rule raises it.
CallbackUrlRefused = public_urls.UrlRefused


# --- Address checks ----------------------------------------------------------------------


def check_callback_url(url: str, *, resolve: bool) -> list[str]:
    """Refuse (CallbackUrlRefused) a URL that is not http(s) or aims at a non-public
    address, by the one rule in `veoproject.public_urls`. With `resolve`, the host name is
    resolved and every address it has must be public; the checked addresses are returned.
    Returns [] when private addresses are allowed, or when not resolving a name."""
    parsed = public_urls.check_url(url, schemes=("http", "https"))
    if settings.PRIVATE_URLS_ALLOWED or not resolve:
        return []
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return public_urls.resolve_public(parsed.raw_host.decode("ascii"), port)


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
        group="callbacks",
    )


def deliver_callback(generation_id: str, attempt: int = 1, deferred: int = 0) -> str:
    """django-q2 task: POST attempt number `attempt` of a generation's callback. Returns
    what happened (for the task result). Safe to run twice: the attempt row is the claim.
    `deferred` counts how often this attempt already found no free slot."""
    generation = Generation.objects.select_related("owner").filter(pk=generation_id).first()
    if generation is None or not generation.callback_url or not generation.is_final:
        return "skipped"
    if generation.callback_delivered_at is not None:
        return "already_delivered"
    if not 1 <= attempt <= MAX_ATTEMPTS:
        return "gave_up"
    holder = f"{generation.pk.hex}-{uuid.uuid4().hex[:8]}"
    slots = _take_slots(owner_id=generation.owner_id, holder=holder)
    if slots is None:
        _defer(generation, attempt, deferred + 1)
        return "deferred"
    try:
        return _attempt(generation, attempt)
    finally:
        WorkerLease.objects.filter(name__in=slots, holder=holder).delete()


def _attempt(generation: Generation, attempt: int) -> str:
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
    """One POST under the attempt's total deadline; (status code or None, error text,
    worth retrying)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(secret=generation.owner.webhook_secret, body=body),
        "X-Veo-Event": f"generation.{generation.public_status}",
        "X-Veo-Attempt": str(attempt),
    }
    try:
        with public_urls.open_url(
            generation.callback_url,
            method="POST",
            content=body,
            headers=headers,
            schemes=("http", "https"),
            deadline_seconds=settings.CALLBACK_TIMEOUT_SECONDS,
        ) as response:
            # The body is not read: a receiver cannot make us download anything.
            status = response.status_code
    except public_urls.UrlRefused as exc:
        # A name that does not resolve may come back; a private address will not.
        return None, str(exc), exc.retryable
    except httpx.HTTPError as exc:
        return None, f"{exc.__class__.__name__}: {exc}", True
    if 200 <= status < 300:
        return status, "", False
    return status, f"HTTP {status}", True


# --- Slots ---------------------------------------------------------------------------------


def _take_lease(name: str, holder: str) -> bool:
    """Take the lease `name` if it is free or expired (one UPDATE, or one INSERT)."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.CALLBACK_TIMEOUT_SECONDS) + SLOT_MARGIN
    if (
        WorkerLease.objects.filter(name=name)
        .filter(Q(expires_at__lt=now) | Q(holder=""))
        .update(holder=holder, expires_at=expires)
    ):
        return True
    try:
        with transaction.atomic():
            WorkerLease.objects.create(name=name, holder=holder, expires_at=expires)
    except IntegrityError:
        return False
    return True


def _take_one(prefix: str, count: int, holder: str) -> str | None:
    for n in range(max(count, 1)):
        if _take_lease(f"{prefix}{n}", holder):
            return f"{prefix}{n}"
    return None


def _take_slots(*, owner_id: int, holder: str) -> list[str] | None:
    """One of the owner's slots, then one of the cluster's; None (holding nothing) if
    either is full. The owner's first: a user's backlog then never ties up a cluster slot."""
    mine = _take_one(f"{USER_SLOT}{owner_id}.", settings.CALLBACKS_PER_USER, holder)
    if mine is None:
        return None
    shared = _take_one(CLUSTER_SLOT, settings.CALLBACK_CONCURRENCY, holder)
    if shared is None:
        WorkerLease.objects.filter(name=mine, holder=holder).delete()
        return None
    return [mine, shared]


def _defer(generation: Generation, attempt: int, deferred: int) -> None:
    """Come back later for the same attempt (no attempt was claimed, none is spent)."""
    from django_q.models import Schedule

    delay = min(DEFER_SECONDS * 2 ** min(deferred - 1, 8), MAX_DEFER_SECONDS)
    delay *= random.uniform(1.0, 1.5)
    Schedule.objects.create(
        name=f"callback:{generation.pk}:{attempt}:later:{uuid.uuid4().hex[:8]}",
        func="generations.callbacks.deliver_callback",
        args=repr((str(generation.pk), attempt, deferred)),
        schedule_type=Schedule.ONCE,
        repeats=-1,
        next_run=timezone.now() + timedelta(seconds=delay),
    )
    logger.info(
        "event=callback_deferred generation=%s attempt=%s deferred=%s delay=%.0f",
        generation.pk,
        attempt,
        deferred,
        delay,
    )


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
        pending = Q(name=f"callback:{pk}:{following}") | Q(
            name__startswith=f"callback:{pk}:{following}:later:"
        )
        if Schedule.objects.filter(pending).exists():
            continue  # the scheduler has it (a retry or a deferral); it may only be late
        async_task(
            "generations.callbacks.deliver_callback",
            str(pk),
            following,
            task_name=f"callback-{pk}-{following}",
            group="callbacks",
        )
        enqueued += 1
    if enqueued:
        logger.info("event=callbacks_swept enqueued=%s", enqueued)
    return enqueued
