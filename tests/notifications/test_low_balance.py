"""The low-balance email: once when a hold takes the available credits below the user's
threshold, and again only after credits added lifted them back to it."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts import ledger
from accounts.models import LedgerEntry
from generations import pricing, services
from notifications import low_balance
from notifications.low_balance import check_low_balance
from notifications.models import SentEmail
from notifications.preferences import default_low_balance_threshold, update_preferences
from tests.factories import REQUEST_BODY, UserFactory
from tests.notifications.conftest import html_of, link_in, sent

pytestmark = [pytest.mark.django_db, pytest.mark.pg]  # partial unique indexes decide

LOW = "Your credits are running low"
# REQUEST_BODY costs 320 credits (8 s at 1080p with audio); so does the default video.
PRICE = 320


@pytest.fixture(autouse=True)
def _no_in_flight_cap(settings):
    settings.MAX_IN_FLIGHT_PER_USER = 0  # videos stay in flight: the tests only hold


def accept(user, at_commit, **changes):
    with at_commit():
        return services.accept(user=user, params={**REQUEST_BODY, **changes}).generation


def test_the_default_threshold_is_the_price_of_one_default_video():
    assert default_low_balance_threshold() == PRICE  # 8 s x 40 credits/s, 720p with audio


def test_one_email_when_a_hold_takes_the_balance_below_the_threshold(at_commit):
    owner = UserFactory(credits=700)
    accept(owner, at_commit)  # 380 left: not below
    assert mail.outbox == []

    accept(owner, at_commit)  # 60 left

    (message,) = sent(LOW)
    assert message.to == [owner.email]
    assert "You have 60 credits available" in message.body
    assert "threshold of 320 credits" in message.body
    assert "https://veo.example.com/credits/" in message.body
    assert "<strong>60 credits</strong>" in html_of(message)


# 4 s at 720p without audio: 80 credits a video.
CHEAP = {"duration": "4s", "resolution": "720p", "generate_audio": False}


def owner_with_threshold(credits: int, threshold: int, *, wanted: bool = True):
    owner = UserFactory(credits=credits)
    update_preferences(
        user=owner,
        video_emails=False,
        low_balance_emails=wanted,
        low_balance_threshold=threshold,
    )
    return owner


def test_not_again_while_the_balance_stays_low(at_commit):
    owner = owner_with_threshold(1000, 900)
    for _ in range(4):  # 920, 840 (below), 760, 680
        accept(owner, at_commit, **CHEAP)

    (message,) = sent(LOW)
    assert "You have 840 credits available" in message.body


def test_credits_added_above_the_threshold_rearm_it(at_commit):
    owner = owner_with_threshold(1000, 900)
    accept(owner, at_commit, **CHEAP)
    accept(owner, at_commit, **CHEAP)  # 840: the first email
    ledger.grant(user=owner, amount=340, reason="top-up")  # 1180: above again

    for _ in range(3):  # 1100, 1020, 940: not below
        accept(owner, at_commit, **CHEAP)
    assert len(sent(LOW)) == 1
    accept(owner, at_commit, **CHEAP)  # 860: below again

    assert [m.body.split("You have ")[1].split(" credits")[0] for m in sent(LOW)] == [
        "840",
        "860",
    ]
    assert SentEmail.objects.filter(user=owner, kind="low_balance").count() == 2
    assert SentEmail.objects.filter(user=owner, rearmed_at__isnull=True).count() == 1


def test_credits_added_that_stay_below_do_not_rearm_it(at_commit):
    owner = owner_with_threshold(1000, 900)
    accept(owner, at_commit, **CHEAP)
    accept(owner, at_commit, **CHEAP)  # 840: the email
    ledger.grant(user=owner, amount=50, reason="a little")  # 890: still below
    accept(owner, at_commit, **CHEAP)  # 810

    assert len(sent(LOW)) == 1


def test_a_released_hold_does_not_rearm_it(at_commit):
    owner = owner_with_threshold(1000, 900)
    accept(owner, at_commit, **CHEAP)
    failing = accept(owner, at_commit, **CHEAP)  # 840: the email
    with at_commit():
        services.fail(generation_id=failing.pk, code="timeout", message="Took too long.")
    # 920 available again, but only because a hold was given back: nothing was added.
    accept(owner, at_commit, **CHEAP)  # 840

    assert len(sent(LOW)) == 1


def test_the_check_running_twice_sends_once(at_commit):
    owner = owner_with_threshold(100, 900)
    assert check_low_balance(user_id=owner.pk) is True
    assert check_low_balance(user_id=owner.pk) is False

    assert len(sent(LOW)) == 1


def test_switched_off_or_a_zero_threshold_sends_nothing(at_commit):
    switched_off = owner_with_threshold(1000, 900, wanted=False)
    zero = owner_with_threshold(100, 0)
    for owner in (switched_off, zero):
        accept(owner, at_commit, **CHEAP)

    assert mail.outbox == []


def test_the_low_balance_email_carries_its_own_unsubscribe_link(at_commit):
    owner = owner_with_threshold(1000, 950)
    accept(owner, at_commit, **CHEAP)

    (message,) = sent(LOW)
    link = link_in(message.body, "/notifications/unsubscribe/")
    assert message.extra_headers["List-Unsubscribe"] == f"<{link}>"
    assert "low-balance emails" in message.body


def test_after_a_hold_one_read_after_commit_and_no_task_while_above_the_threshold(
    user, django_capture_on_commit_callbacks, django_assert_num_queries
):
    """Accept's transaction pays nothing for this; after its commit, one read."""
    entry = LedgerEntry.objects.filter(account__user=user).latest("pk")  # 1000 available
    rates = pricing.active_rates()
    with django_assert_num_queries(0), django_capture_on_commit_callbacks() as callbacks:
        low_balance.after_hold(user_id=user.pk, entry=entry, rates=rates)
    (after_commit,) = callbacks

    with django_assert_num_queries(1):  # the switches; no task enqueued
        after_commit()
    assert mail.outbox == []


def test_the_switches_are_read_once_per_process_and_a_change_here_is_seen_at_once(
    user, settings, django_capture_on_commit_callbacks, django_assert_num_queries
):
    """With LOCAL_CACHE_SECONDS the after-commit check reads a user's switches once, not
    once per accept; saving them in this process is seen by the next check."""
    settings.LOCAL_CACHE_SECONDS = 60
    entry = LedgerEntry.objects.filter(account__user=user).latest("pk")  # 1000 available
    rates = pricing.active_rates()

    def check() -> None:
        with django_capture_on_commit_callbacks() as callbacks:
            low_balance.after_hold(user_id=user.pk, entry=entry, rates=rates)
        (after_commit,) = callbacks
        after_commit()

    with django_assert_num_queries(1):
        check()
    with django_assert_num_queries(0):  # the switches from this process's memory
        check()
    assert mail.outbox == []

    # A threshold above the 1000 available: the next check enqueues (and the task warns).
    update_preferences(
        user=user, video_emails=True, low_balance_emails=True, low_balance_threshold=1500
    )
    with django_capture_on_commit_callbacks(execute=True):
        check()
    assert len(sent(LOW)) == 1
