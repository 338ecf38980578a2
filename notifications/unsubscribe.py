"""Unsubscribe links: a signed token names a user and one kind of email, so one click
switches that kind off, logged in or not. No expiry: a link in an old email must work."""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

from notifications.preferences import TOPICS, Topic

SALT = "notifications.unsubscribe"


class BadToken(Exception):
    """A token that was not signed by us, or names no known kind of email."""


@dataclass(frozen=True)
class Unsubscribe:
    user_id: int
    topic: Topic


def make_token(*, user_id: int, topic: Topic) -> str:
    return signing.dumps([user_id, topic], salt=SALT)


def read_token(token: str) -> Unsubscribe:
    try:
        value = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        raise BadToken from None
    match value:
        case [int() as user_id, str() as topic] if topic in TOPICS:
            return Unsubscribe(user_id=user_id, topic=topic)  # type: ignore[arg-type]
    raise BadToken
