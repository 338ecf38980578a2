"""What staff do to users from the admin: suspend, reactivate, correct credits, revoke
tokens. Every action is recorded in the audit trail (`veoproject.audit`) with its reason."""

from __future__ import annotations

import logging
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts import ledger, tokens
from accounts.models import ApiToken, LedgerEntry, User
from veoproject import audit
from veoproject.amounts import is_nonzero
from veoproject.exceptions import ApplicationError, ValidationFailed

logger = logging.getLogger(__name__)


class StaffActionRefused(ApplicationError):
    code = "permission_denied"
    http_status = 403
    default_message = gettext_lazy("You may not do that.")


def end_sessions(*, user: User) -> int:
    """Delete every session of `user` (database-backed session engines; with others the
    sessions end at the next request anyway, since an inactive user cannot authenticate).
    Returns how many were deleted."""
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store_class, "get_model_class"):
        return 0
    model = store_class.get_model_class()
    store = store_class()
    doomed = [
        session.session_key
        for session in model.objects.filter(expire_date__gt=timezone.now()).iterator(
            chunk_size=2000
        )
        if str(store.decode(session.session_data).get(SESSION_KEY)) == str(user.pk)
    ]
    model.objects.filter(session_key__in=doomed).delete()
    if hasattr(store, "cache_key_prefix"):  # cached_db: drop the cached copies too
        from django.core.cache import caches

        caches[settings.SESSION_CACHE_ALIAS].delete_many(
            [store.cache_key_prefix + key for key in doomed]
        )
    return len(doomed)


def suspend_user(*, user: User, actor: User, reason: str) -> bool:
    """Suspend an account: it can no longer log in, its sessions end and its API tokens
    stop working (authentication refuses inactive users). Generations in flight run to
    their end and settle normally. Only a superuser may suspend a staff account, and
    nobody themselves. Returns False if the user was already suspended."""
    reason = audit.require_reason(reason)
    if user.pk == actor.pk:
        raise StaffActionRefused("You cannot suspend your own account.")
    if (user.is_staff or user.is_superuser) and not actor.is_superuser:
        raise StaffActionRefused("Only a superuser can suspend a staff account.")
    with transaction.atomic():
        if not User.objects.filter(pk=user.pk, is_active=True).update(
            is_active=False, suspension_reason=reason
        ):
            return False
        user.is_active = False
        user.suspension_reason = reason
        sessions = end_sessions(user=user)
        audit.record(
            actor=actor, objects=[user], action_flag=audit.CHANGE, message=f"Suspended: {reason}"
        )
    logger.info("event=user_suspended user=%s actor=%s sessions=%s", user.pk, actor.pk, sessions)
    return True


def reactivate_user(*, user: User, actor: User, reason: str) -> bool:
    """Lift a suspension. Returns False if the user was active."""
    reason = audit.require_reason(reason)
    if (user.is_staff or user.is_superuser) and not actor.is_superuser:
        raise StaffActionRefused("Only a superuser can reactivate a staff account.")
    with transaction.atomic():
        if not User.objects.filter(pk=user.pk, is_active=False).update(
            is_active=True, suspension_reason=""
        ):
            return False
        user.is_active = True
        user.suspension_reason = ""
        audit.record(
            actor=actor,
            objects=[user],
            action_flag=audit.CHANGE,
            message=f"Reactivated: {reason}",
        )
    logger.info("event=user_reactivated user=%s actor=%s", user.pk, actor.pk)
    return True


def correct_credits(
    *,
    user: User,
    amount: int,
    reason: str,
    actor: User,
    idempotency_key: str | None = None,
) -> LedgerEntry:
    """Grant (amount > 0) or deduct (amount < 0) credits, recorded with the staff member.

    A deduction never takes credits that are reserved for generations in flight, nor
    pushes the available credits below zero (InsufficientCredits). `idempotency_key` (a
    token of the form that was shown) makes a double submit post once.
    """
    reason = audit.require_reason(reason)
    if not is_nonzero(amount):
        raise ValidationFailed(
            "The amount must be a non-zero whole number.", fields={"amount": ["Not zero."]}
        )
    key = f"staff:{idempotency_key}" if idempotency_key else None
    with transaction.atomic():
        if key and (existing := LedgerEntry.objects.filter(idempotency_key=key).first()):
            return existing
        if amount > 0:
            entry = ledger.grant(
                user=user, amount=amount, reason=reason, actor=actor, idempotency_key=key
            )
            verb = f"Granted {amount} credits"
        else:
            entry = ledger.adjust(
                user=user, amount=amount, reason=reason, actor=actor, idempotency_key=key
            )
            verb = f"Deducted {-amount} credits"
        audit.record(
            actor=actor,
            objects=[user],
            action_flag=audit.CHANGE,
            message=f"{verb} (ledger entry {entry.pk}): {reason}",
        )
    return entry


def revoke_tokens(*, tokens_to_revoke: list[ApiToken], actor: User) -> int:
    """Revoke API tokens at once (already revoked ones are left as they are). Returns how
    many were revoked now."""
    revoked = []
    with transaction.atomic():
        for token in tokens_to_revoke:
            if token.revoked_at is None:
                tokens.revoke_token(token=token)
                revoked.append(token)
        audit.record(
            actor=actor, objects=revoked, action_flag=audit.CHANGE, message="Revoked by staff"
        )
    return len(revoked)
