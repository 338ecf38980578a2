"""Delivering a callback: attempts, retries, and the address rule for callback URLs.

`enqueue_callback` (called on commit when a generation reaches a final state) enqueues
attempt 1; each attempt is claimed by inserting its `CallbackAttempt` row (unique per
generation and attempt number), so a redelivered or duplicated task never POSTs the same
attempt twice. A failed attempt schedules the next one as a django-q2 `Schedule` of type
ONCE at `next_run` (django-q2 has no delayed enqueue): the row is durable in the database,
needs no extra model field and no polling while nothing is due, and the scheduler's 30 s
tick is fine for a backoff that starts at 30 s. Backoff doubles up to an hour, for
`MAX_ATTEMPTS` attempts (about 3 hours in all); any 2xx is success, anything else
(including redirects, which are never followed) is retried. What a broker or a worker
loses, `sweep.sweep_callbacks` recovers.

Server-side request forgery: callback URLs may not point at loopback, private, link-local
or otherwise non-public addresses (unless `PRIVATE_URLS_ALLOWED`): the one rule and the one
fetch in `veoproject/public_urls.py`. The URL is checked at accept time and again at each
connect, where the connection goes to the very address that was checked (Host header and
TLS SNI keep the name), so DNS rebinding gains nothing. Each attempt has one total deadline
(`CALLBACK_TIMEOUT_SECONDS`) over connect, send and the answer's headers: a receiver that
trickles a byte every few seconds is cut off, and its body is never read.

A delivery that finds no free slot (`slots`) schedules itself again a little later (a
`Schedule` named `callback:<id>:<attempt>:later:<random>`, backing off to
`MAX_DEFER_SECONDS`) and frees its worker at once.
"""

from __future__ import annotations

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
from django.utils import timezone

from generations.callbacks.signing import SIGNATURE_HEADER, signature_header
from generations.callbacks.slots import release_slots, take_slots
from generations.models import CallbackAttempt, Generation
from generations.tasks import TASKS
from veoproject import public_urls
from veoproject.backoff import backoff

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
USER_AGENT = "veoproject-callbacks/1.0"
# A delivery that finds no free slot tries again after this, doubling up to the maximum
# (plus jitter, so deferred deliveries do not all come back in the same scheduler tick).
DEFER_SECONDS = 10
MAX_DEFER_SECONDS = 120

# The name the serializer and older callers know; the one rule raises it.
CallbackUrlRefused = public_urls.UrlRefused


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


def payload(generation: Generation) -> bytes:
    """The generation JSON, as GET /api/v1/generations/{id}/ shows it (URLs made absolute
    with PUBLIC_BASE_URL when it is set)."""
    from generations.serializers import GenerationSerializer

    data = GenerationSerializer(generation).data
    return json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def retry_delay(attempt: int) -> int:
    """Seconds to wait before `attempt` (2, 3, ...): 30 s, 1 min, 2 min, ... up to 1 h."""
    delay = backoff(attempt - 1, first=FIRST_RETRY_SECONDS, cap=MAX_RETRY_SECONDS)
    return int(delay.total_seconds())


def enqueue_callback(*, generation: Generation) -> None:
    """Start delivering a final generation's callback, if it has a callback_url. Call it
    in `transaction.on_commit`; calling it twice is harmless (attempts are claimed)."""
    if not generation.callback_url or generation.callback_delivered_at is not None:
        return
    send_attempt(generation.pk, 1)


def send_attempt(generation_id: uuid.UUID | str, attempt: int) -> None:
    """Enqueue attempt number `attempt` of a generation's callback now."""
    from django_q.tasks import async_task

    async_task(
        TASKS["deliver_callback"],
        str(generation_id),
        attempt,
        task_name=f"callback-{generation_id}-{attempt}",
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
    slots = take_slots(owner_id=generation.owner_id, holder=holder)
    if slots is None:
        _defer(generation, attempt, deferred + 1)
        return "deferred"
    try:
        return _attempt(generation, attempt)
    finally:
        release_slots(slots, holder=holder)


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


def _defer(generation: Generation, attempt: int, deferred: int) -> None:
    """Come back later for the same attempt (no attempt was claimed, none is spent)."""
    from django_q.models import Schedule

    delay = backoff(deferred, first=DEFER_SECONDS, cap=MAX_DEFER_SECONDS).total_seconds()
    delay *= random.uniform(1.0, 1.5)
    Schedule.objects.create(
        name=f"callback:{generation.pk}:{attempt}:later:{uuid.uuid4().hex[:8]}",
        func=TASKS["deliver_callback"],
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
            "func": TASKS["deliver_callback"],
            "args": repr((str(generation.pk), attempt)),
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": timezone.now() + timedelta(seconds=retry_delay(attempt)),
        },
    )
