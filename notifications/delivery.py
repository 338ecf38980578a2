"""Rendering an email from its templates and sending it at most once.

Every email is claimed first: a `SentEmail` row is inserted in its own short transaction,
and its unique constraints let one claim win however many tasks try. Only the winner
sends, outside any transaction (an SMTP conversation never holds a database lock). Should
sending fail, the claim is deleted and the error raised, so that a later run (django-q2's
failed tasks can be resubmitted) may send it; an email is never sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import time_zones
from notifications.models import SentEmail
from notifications.preferences import TOPICS, Topic
from notifications.unsubscribe import make_token
from veoproject import site_urls

logger = logging.getLogger(__name__)


# A link in an email (which has no request to build it from), by the one rule.
site_url = site_urls.for_email


def claim(**fields: Any) -> SentEmail | None:
    """Claim an email; None if it was claimed (and so sent, or being sent) before."""
    try:
        with transaction.atomic():
            return SentEmail.objects.create(**fields)
    except IntegrityError:
        return None


def build(
    *,
    template: str,
    to: str,
    context: Mapping[str, Any],
    user_id: int,
    topic: Topic | None = None,
) -> EmailMultiAlternatives:
    """The email from `templates/emails/<template>_subject.txt`, `.txt` and `.html`. With
    a `topic`, it carries a one-click unsubscribe link (in the body and as RFC 8058
    List-Unsubscribe headers)."""
    context = {
        **context,
        "site_url": site_url("/"),
        "settings_url": site_url(reverse("notification-settings")),
    }
    headers = {"Auto-Submitted": "auto-generated"}
    if topic is not None:
        token = make_token(user_id=user_id, topic=topic)
        unsubscribe_url = site_url(reverse("notifications-unsubscribe", args=[token]))
        context["unsubscribe_url"] = unsubscribe_url
        context["unsubscribe_what"] = TOPICS[topic]
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Times in the recipient's zone: a worker has no request, so no zone of its own.
    with timezone.override(time_zones.zone_of_user_id(user_id)):
        subject = " ".join(render_to_string(f"emails/{template}_subject.txt", context).split())
        body = render_to_string(f"emails/{template}.txt", context)
        html = render_to_string(f"emails/{template}.html", context)
    message = EmailMultiAlternatives(
        subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to], headers=headers
    )
    message.attach_alternative(html, "text/html")
    return message


def send(claimed: SentEmail, message: EmailMultiAlternatives) -> None:
    """Send a claimed email and record when; on failure give the claim back and raise."""
    try:
        message.send()
    except Exception:
        logger.warning(
            "event=email_failed kind=%s email=%s user=%s",
            claimed.kind,
            claimed.pk,
            claimed.user_id,
        )
        SentEmail.objects.filter(pk=claimed.pk).delete()
        raise
    SentEmail.objects.filter(pk=claimed.pk).update(sent_at=timezone.now())
    logger.info(
        "event=email_sent kind=%s email=%s user=%s", claimed.kind, claimed.pk, claimed.user_id
    )
