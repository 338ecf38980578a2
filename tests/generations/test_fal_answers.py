"""fal's answers classified by who must act, against the fake fal with the real fal-client:
our credentials refused on polls (the generation stays in flight, the ledger does not
move), a result past fal's retention window, answers fal-client cannot read (one bad
generation never stalls the sweep), and every call bounded in time."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import CreditAccount
from generations import fal, services
from generations.models import FalAccount, Generation
from generations.services.account import CREDENTIALS_BACKOFF_MIN
from generations.services.following import UNREADABLE_DELAY_MIN
from tests.credits import kinds
from tests.factories import REQUEST_BODY

# pg: the sweep polls from a thread pool on PostgreSQL (run again there by make test).
pytestmark = [pytest.mark.django_db, pytest.mark.pg]

KEY_REFUSED = "No user found for Key ID and Secret"


@pytest.fixture
def fake(real_fal):
    """The real gateway against a fresh fake fal (`real_fal` in tests/conftest.py)."""
    return real_fal(queue_seconds=0, run_seconds=0.2, max_concurrent=10)


def submitted(user, django_capture_on_commit_callbacks, **params) -> Generation:
    """Accept a generation; its submit runs at commit (django-q2 sync mode)."""
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.accept(user=user, params={**REQUEST_BODY, **params}).generation
    generation.refresh_from_db()
    assert generation.status == "queued", generation.status
    return generation


def finished_on_fal(fake, *generations: Generation) -> None:
    fake.wait_for(lambda: all(fake.job(g.fal_request_id).state == "COMPLETED" for g in generations))


def sweep_now(**changes) -> services.SweepReport:
    Generation.objects.in_flight().update(next_poll_at=None, **changes)
    return services.sweep()


def held(user) -> int:
    return CreditAccount.objects.get(user=user).reserved


# --- Our credentials, refused on polls -------------------------------------------------------


@pytest.mark.parametrize("target", ["status", "result"])
def test_refused_credentials_on_a_poll_keep_the_generation_in_flight(
    target, fake, user, django_capture_on_commit_callbacks, caplog
):
    generation = submitted(user, django_capture_on_commit_callbacks)
    finished_on_fal(fake, generation)
    if target == "status":
        fake.configure(accepted_keys=["a-key-that-is-not-ours"])  # the key was revoked
    else:
        fake.fail_next("result", 403)
    before = timezone.now()

    with caplog.at_level(logging.INFO):
        sweep_now()

    generation.refresh_from_db()
    assert generation.status in ("queued", "running")  # fal may still render it
    assert (generation.error_code, generation.error_message) == ("", "")
    assert kinds(generation) == ["hold"] and held(user) == generation.cost_credits
    assert generation.next_poll_at >= before + CREDENTIALS_BACKOFF_MIN  # backs off
    account = FalAccount.objects.get()
    assert account.credentials_failing_since is not None  # the staff banner's data
    assert account.credentials_message == (KEY_REFUSED if target == "status" else "Forbidden")
    assert f"event=fal_credentials_refused generation={generation.pk}" in caplog.text

    fake.configure(accepted_keys=None)  # the key works again
    with django_capture_on_commit_callbacks(execute=True):
        sweep_now()
    with django_capture_on_commit_callbacks(execute=True):
        sweep_now()  # the video copy
    generation.refresh_from_db()
    assert generation.status == "succeeded"
    assert kinds(generation) == ["hold", "capture"]
    assert FalAccount.objects.get().credentials_failing_since is None  # cleared by a poll


def test_a_deadline_passed_while_credentials_are_refused_neither_fails_nor_refunds(
    fake, user, django_capture_on_commit_callbacks, caplog
):
    generation = submitted(user, django_capture_on_commit_callbacks)
    finished_on_fal(fake, generation)
    fake.configure(accepted_keys=["a-key-that-is-not-ours"])
    past = timezone.now() - timedelta(seconds=1)

    with caplog.at_level(logging.INFO):
        report = sweep_now(deadline_at=past)

    assert report.expired == 1
    generation.refresh_from_db()
    assert generation.status in ("queued", "running")
    assert kinds(generation) == ["hold"] and held(user) == generation.cost_credits
    assert f"event=deadline_passed_credentials_refused generation={generation.pk}" in caplog.text
    assert not fake.requests("cancel")  # nothing canceled on fal either

    # Once fal answers again, its last status decides: here the video was made.
    fake.configure(accepted_keys=None)
    with django_capture_on_commit_callbacks(execute=True):
        sweep_now()
    with django_capture_on_commit_callbacks(execute=True):
        sweep_now()
    generation.refresh_from_db()
    assert generation.status == "succeeded"
    assert kinds(generation) == ["hold", "capture"]


def test_refused_credentials_on_cancel_are_recorded_for_staff(fake, user, caplog):
    fake.configure(accepted_keys=["a-key-that-is-not-ours"])
    with caplog.at_level(logging.INFO):
        services.cancel_on_fal(request_id="req-gone")
    assert FalAccount.objects.get().credentials_message == KEY_REFUSED
    assert "event=fal_credentials_refused request=req-gone call=cancel" in caplog.text


# --- Results past fal's retention window -----------------------------------------------------


def test_a_result_fetched_after_the_retention_window_is_an_upstream_error(
    fake, user, django_capture_on_commit_callbacks
):
    fake.configure(result_ttl_seconds=0.05)
    generation = submitted(user, django_capture_on_commit_callbacks)
    finished_on_fal(fake, generation)
    time.sleep(0.1)

    sweep_now()

    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "upstream_error")
    assert generation.error_message == fal.PLAIN_MESSAGES["expired"]
    assert "not found" in generation.fal_logs[-1]  # fal's words, for staff
    assert [r.status for r in fake.requests("result")] == [404]
    assert kinds(generation) == ["hold", "release"] and held(user) == 0


# --- Answers fal-client cannot read ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the sweep's poll threads see the rows
@pytest.mark.parametrize(
    ("target", "fault"),
    [
        ("status", "unknown_status"),  # fal_client: ValueError("Unknown status: PAUSED")
        ("status", "missing_fields"),  # fal_client: KeyError('logs')
        ("status", "not_json"),  # httpx: JSONDecodeError
        ("result", "not_json"),
    ],
)
def test_an_unreadable_answer_for_one_generation_does_not_stall_the_others(
    target, fault, fake, user, other_user, django_capture_on_commit_callbacks, caplog
):
    # fal holds both in its queue until both are ours: each submit runs a sweep inline,
    # which polls a generation submitted a second or more before (a loaded machine takes
    # that long), and must not find `first` finished before the sweep tested here.
    fake.configure(max_concurrent=0)
    first = submitted(user, django_capture_on_commit_callbacks)
    second = submitted(other_user, django_capture_on_commit_callbacks)
    fake.configure(max_concurrent=10)
    finished_on_fal(fake, first, second)
    fake.fail_next(target, fault)
    before = timezone.now()

    with caplog.at_level(logging.INFO), django_capture_on_commit_callbacks(execute=True):
        report = sweep_now()

    assert report.polled == 2
    crashed = [g for g in (first, second) if f"generation={g.pk}" in _crash_lines(caplog)]
    assert len(crashed) == 1, caplog.text  # logged with its id and traceback
    assert "Traceback" in caplog.text
    (bad,) = crashed
    good = second if bad == first else first
    bad.refresh_from_db()
    good.refresh_from_db()
    assert good.fal_video_url  # the sweep went on: its video is being copied
    assert bad.status in ("queued", "running") and not bad.fal_video_url
    # Retried later, with backoff: from when the sweep set it, not from now (the rest of
    # the pass, the other's video copied, may take longer than that on a loaded machine).
    assert bad.next_poll_at >= before + UNREADABLE_DELAY_MIN
    assert kinds(bad) == ["hold"]

    with django_capture_on_commit_callbacks(execute=True):
        sweep_now()  # the next look at it reads fine
    bad.refresh_from_db()
    assert bad.fal_video_url


def _crash_lines(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if "fal_follow_crashed" in r.msg)


def test_a_generation_that_keeps_being_unreadable_still_expires_at_its_deadline(
    fake, user, django_capture_on_commit_callbacks
):
    generation = submitted(user, django_capture_on_commit_callbacks)
    fake.configure(faults={"status": {"unknown_status": 1.0}})

    sweep_now()
    generation.refresh_from_db()
    assert generation.status in ("queued", "running")

    sweep_now(deadline_at=timezone.now() - timedelta(seconds=1))
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "timeout")
    assert kinds(generation) == ["hold", "release"]


# --- What users read --------------------------------------------------------------------------


def test_a_submit_refused_for_a_reason_that_is_not_the_input_reads_plainly(
    fake, user, django_capture_on_commit_callbacks
):
    fake.fail_next("submit", 404)
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.accept(user=user, params=REQUEST_BODY).generation
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "upstream_error")
    assert generation.error_message == fal.PLAIN_MESSAGES["upstream_error"]


def test_fals_account_answers_are_classified_with_their_raw_words(fake, settings):
    gateway = fal.get_gateway()
    fake.lock_account("Exhausted balance")
    with pytest.raises(fal.FalAccountProblem) as locked:
        gateway.submit(arguments=REQUEST_BODY)
    assert locked.value.reason == "account_locked"
    assert locked.value.raw.startswith("User is locked. Reason: Exhausted balance.")
    assert "locked" not in locked.value.message and "fal" not in locked.value.message

    fake.unlock_account()
    fake.configure(accepted_keys=["a-key-that-is-not-ours"])
    with pytest.raises(fal.FalAccountProblem) as refused:
        gateway.submit(arguments=REQUEST_BODY)
    assert (refused.value.reason, refused.value.raw) == ("credentials", KEY_REFUSED)


# --- Time budget ------------------------------------------------------------------------------


def test_every_fal_call_is_bounded_whatever_fal_client_would_retry(fake, settings, monkeypatch):
    """fal-client would retry a stalled status 10 times with its 120 s timeout; a call of
    ours gives up within its budget, after at most CLIENT_ATTEMPTS requests."""
    settings.FAL_HTTP_TIMEOUT = 0.3
    monkeypatch.setattr(fal, "CALL_BUDGET_SECONDS", 5.0)
    gateway = fal.get_gateway()
    request_id = gateway.submit(arguments=REQUEST_BODY).request_id
    fake.fail_next("status", "slow", times=10, seconds=1.0)

    started = time.monotonic()
    with pytest.raises(fal.FalRetryable):
        gateway.status(request_id=request_id)

    assert time.monotonic() - started < 3.0
    assert len(fake.requests("status")) == fal.CLIENT_ATTEMPTS

    monkeypatch.setattr(fal, "CALL_BUDGET_SECONDS", 0.5)  # the budget cuts first
    fake.fail_next("status", "slow", times=10, seconds=1.0)
    started = time.monotonic()
    with pytest.raises(fal.FalRetryable):
        gateway.status(request_id=request_id)
    assert time.monotonic() - started < 1.5
