"""Each email at most once when its tasks race, each thread on its own connection.

Marked `pg`: run on SQLite (BEGIN IMMEDIATE serialises the claims) and again on
PostgreSQL, where the partial unique indexes of the sent-log decide.
"""

from __future__ import annotations

import pytest
from django.core import mail

from generations import services
from notifications.low_balance import check_low_balance
from notifications.models import SentEmail
from notifications.preferences import update_preferences
from notifications.services import send_generation_outcome
from tests.factories import REQUEST_BODY, UserFactory
from tests.races import race

pytestmark = [pytest.mark.pg, pytest.mark.django_db(transaction=True)]


def test_racing_outcome_tasks_send_one_email():
    owner = UserFactory(credits=1000)
    switches = {"low_balance_emails": True, "low_balance_threshold": None}
    update_preferences(user=owner, video_emails=False, **switches)  # no task at commit
    generation = services.accept(user=owner, params=REQUEST_BODY).generation
    services.fail(generation_id=generation.pk, code="timeout", message="Took too long.")
    update_preferences(user=owner, video_emails=True, **switches)

    results = race(10, lambda _: send_generation_outcome(generation_id=generation.pk))

    assert [r for r in results if r[0] == "error"] == []
    assert sorted(result for _, result in results) == [False] * 9 + [True]
    assert len(mail.outbox) == 1
    assert SentEmail.objects.filter(generation=generation).count() == 1


def test_racing_low_balance_checks_send_one_email():
    owner = UserFactory(credits=100)
    update_preferences(
        user=owner, video_emails=True, low_balance_emails=True, low_balance_threshold=500
    )

    results = race(10, lambda _: check_low_balance(user_id=owner.pk))

    assert [r for r in results if r[0] == "error"] == []
    assert sum(result for _, result in results) == 1
    assert len(mail.outbox) == 1
    assert SentEmail.objects.filter(user=owner, kind="low_balance").count() == 1
