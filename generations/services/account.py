"""Our own fal account: dispatch paused while fal refuses our submits, and the health of
our credentials on polls. One `FalAccount` row (pk=1), written only here.

* Dispatch pause. A submit refused for the account (fal's "User is locked", billing, a bad
  key: `FalAccountProblem`) pauses dispatch for everyone. Generations not yet on fal stay
  pending with their holds; nothing is failed or refunded, and the sweep submits nothing
  but one probe (the oldest waiting generation) per probe interval, which grows from
  PROBE_BACKOFF_MIN to PROBE_BACKOFF_MAX. The probe's success resumes dispatch; so does
  staff's "Resume dispatch" in the admin (audited). On resume, waiting generations get a
  fresh deadline: the pause was not their fault.
* Credentials on polls. A 401/403 on a status, result or cancel is recorded here (since
  when, fal's words) and the generation stays in flight: fal may still render it. Polls
  back off from CREDENTIALS_BACKOFF_MIN to CREDENTIALS_BACKOFF_MAX. The first answer fal
  gives again clears it. A generation whose deadline passes meanwhile is kept until fal
  can be read again; then its last status decides (`services.sweeping`).
* The fal user id of the first webhook proved ours, for the operator to pin
  (FAL_WEBHOOK_USER_ID).

Staff see the raw causes (admin banner); users only that videos are delayed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from generations.dispatch import enqueue
from generations.models import FalAccount, Generation
from veoproject import audit

logger = logging.getLogger(__name__)

PROBE_BACKOFF_MIN = timedelta(seconds=settings.FAL_PROBE_MIN_SECONDS)  # 30 s by default
PROBE_BACKOFF_MAX = timedelta(minutes=10)
CREDENTIALS_BACKOFF_MIN = timedelta(seconds=30)
CREDENTIALS_BACKOFF_MAX = timedelta(minutes=10)

# Generations fal has not accepted yet: what a paused dispatch holds back.
AWAITING_SUBMIT = Q(fal_request_id="", fal_video_url="")


def snapshot() -> FalAccount:
    """The account as it is now: one read, no write (an unsaved default when no row)."""
    return FalAccount.objects.filter(pk=1).first() or FalAccount(pk=1)


def dispatch_paused() -> bool:
    return FalAccount.objects.filter(pk=1, dispatch_paused=True).exists()


def _row() -> None:
    FalAccount.objects.get_or_create(pk=1)


def _grown(since: datetime | None, now: datetime, low: timedelta, high: timedelta) -> timedelta:
    """A delay that doubles with each wait: as long as the trouble has lasted, within
    [low, high] (30 s, 60 s, 120 s ... from the first failure)."""
    lasted = now - since if since else timedelta(0)
    return min(max(lasted, low), high)


# --- Dispatch pause ----------------------------------------------------------------------


def pause_dispatch(*, reason: str, message: str) -> None:
    """Pause dispatch because fal refused a submit for the account (or, already paused,
    because the probe was refused again: the next probe waits longer)."""
    now = timezone.now()
    _row()
    first = FalAccount.objects.filter(pk=1, dispatch_paused=False).update(
        dispatch_paused=True,
        pause_reason=reason,
        pause_message=message[:2000],
        paused_at=now,
        next_probe_at=now + PROBE_BACKOFF_MIN,
    )
    if first:
        logger.error(
            "event=fal_dispatch_paused reason=%s next_probe_in=%s message=%r",
            reason,
            int(PROBE_BACKOFF_MIN.total_seconds()),
            message[:500],
        )
        return
    account = snapshot()
    delay = _grown(account.paused_at, now, PROBE_BACKOFF_MIN, PROBE_BACKOFF_MAX)
    FalAccount.objects.filter(pk=1, dispatch_paused=True).update(
        pause_reason=reason, pause_message=message[:2000], next_probe_at=now + delay
    )
    logger.warning(
        "event=fal_dispatch_still_paused reason=%s next_probe_in=%s message=%r",
        reason,
        int(delay.total_seconds()),
        message[:500],
    )


def claim_probe(account: FalAccount) -> bool:
    """Take this probe slot (one sweep at a time): move `next_probe_at` on, as a refused
    probe would, so that a probe that never reports back cannot make a storm either."""
    now = timezone.now()
    if not account.dispatch_paused or account.next_probe_at is None:
        return False
    if account.next_probe_at > now:
        return False
    delay = _grown(account.paused_at, now, PROBE_BACKOFF_MIN, PROBE_BACKOFF_MAX)
    return bool(
        FalAccount.objects.filter(
            pk=1, dispatch_paused=True, next_probe_at=account.next_probe_at
        ).update(next_probe_at=now + delay)
    )


def probe_candidate() -> Generation | None:
    """The oldest generation waiting for its submit that a submit may claim now."""
    now = timezone.now()
    claimable = Q(status=Generation.Status.PENDING) | Q(
        status=Generation.Status.SUBMITTING, lease_until__lt=now
    )
    return (
        Generation.objects.filter(AWAITING_SUBMIT)
        .filter(claimable)
        .order_by("created_at")
        .only("pk")
        .first()
    )


def resume_dispatch(*, actor: User | None = None) -> bool:
    """End the pause (a probe was accepted, or staff pressed Resume) and let the waiting
    generations go: due now, with a fresh deadline. False if dispatch was not paused."""
    now = timezone.now()
    with transaction.atomic():
        account = FalAccount.objects.select_for_update().filter(pk=1).first()
        if account is None or not account.dispatch_paused:
            return False
        reason, paused_at = account.pause_reason, account.paused_at
        if not FalAccount.objects.filter(pk=1, dispatch_paused=True).update(
            dispatch_paused=False,
            pause_reason=FalAccount.PauseReason.NONE,
            pause_message="",
            paused_at=None,
            next_probe_at=None,
        ):
            return False  # resumed meanwhile (the probe and staff at once)
        waiting = (
            Generation.objects.in_flight()
            .filter(AWAITING_SUBMIT)
            .update(
                next_poll_at=None,
                deadline_at=now + timedelta(seconds=settings.GENERATION_DEADLINE_SECONDS),
            )
        )
        if actor is not None:
            since = f"{paused_at:%Y-%m-%d %H:%M}" if paused_at else "unknown"
            audit.record(
                actor=actor,
                objects=[account],
                action_flag=audit.CHANGE,
                message=f"Resumed dispatch to fal (paused since {since}, reason "
                f"{reason or 'unknown'}); {waiting} waiting generation(s) released.",
            )
        transaction.on_commit(lambda: enqueue("sweep"))
    logger.warning(
        "event=fal_dispatch_resumed by=%s waiting=%s paused_for=%s",
        "staff" if actor is not None else "probe",
        waiting,
        int((now - paused_at).total_seconds()) if paused_at else 0,
    )
    return True


# --- Credentials on polls ------------------------------------------------------------------


def credentials_refused(*, message: str) -> timedelta:
    """fal refused our credentials on a poll: record it (the first time since it worked)
    and return how long to wait before that generation's next poll."""
    now = timezone.now()
    _row()
    if FalAccount.objects.filter(pk=1, credentials_failing_since__isnull=True).update(
        credentials_failing_since=now, credentials_message=message[:2000]
    ):
        logger.error("event=fal_credentials_failing message=%r", message[:500])
        return CREDENTIALS_BACKOFF_MIN
    since = FalAccount.objects.filter(pk=1).values_list("credentials_failing_since", flat=True)
    return _grown(since.first(), now, CREDENTIALS_BACKOFF_MIN, CREDENTIALS_BACKOFF_MAX)


def credentials_recovered() -> bool:
    """fal answered a poll again: clear the alarm and poll what was backed off at once."""
    now = timezone.now()
    if not FalAccount.objects.filter(pk=1, credentials_failing_since__isnull=False).update(
        credentials_failing_since=None, credentials_message=""
    ):
        return False
    Generation.objects.in_flight().exclude(fal_request_id="").filter(
        fal_video_url="", next_poll_at__gt=now
    ).update(next_poll_at=now)
    logger.warning("event=fal_credentials_recovered")
    return True


# --- Webhooks ------------------------------------------------------------------------------


def note_webhook_user_id(user_id: str) -> None:
    """Keep the fal user id of the first webhook that proved to be ours (fal signed it, for
    this generation's job), so an operator can pin it (FAL_WEBHOOK_USER_ID); logged once."""
    user_id = user_id[:100]
    if not user_id or FalAccount.objects.filter(pk=1).exclude(webhook_user_id_seen="").exists():
        return
    _row()
    if FalAccount.objects.filter(pk=1, webhook_user_id_seen="").update(
        webhook_user_id_seen=user_id
    ):
        logger.info("event=fal_webhook_user_id user_id=%s", user_id)
