"""fal locks our account (or refuses our key) on submit: dispatch pauses for everyone, the
generations wait with their holds, one probe per interval, and dispatch resumes by itself
or by staff's Resume. Against the fake fal with the real fal-client."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.groups import MODERATORS
from accounts.models import CreditAccount
from generations import services
from generations.models import FalAccount, Generation
from tests.credits import kinds
from tests.factories import REQUEST_BODY, UserFactory

# pg: the pause, the probe and resume are conditional UPDATEs of one row.
pytestmark = [pytest.mark.django_db, pytest.mark.pg]

RESUME = "admin:generations_resume_dispatch"
# fal's words that must never reach a user's page ("balance" alone is our own credits').
RAW_WORDS = ("locked", "Exhausted balance", "billing", "Top up", "credentials", "refused")


@pytest.fixture
def fake(real_fal):
    """The real gateway against a fresh fake fal (`real_fal` in tests/conftest.py)."""
    return real_fal(queue_seconds=0, run_seconds=0.2, max_concurrent=10)


@pytest.fixture
def run_at_commit(django_capture_on_commit_callbacks):
    """Tasks enqueued at commit run inline (django-q2 sync mode), as in a worker."""

    def run():
        return django_capture_on_commit_callbacks(execute=True)

    return run


def accept(user, run_at_commit) -> Generation:
    with run_at_commit():
        generation = services.accept(user=user, params=REQUEST_BODY).generation
    generation.refresh_from_db()
    return generation


def submits(fake) -> int:
    return len(fake.requests("submit"))


def probe_due() -> None:
    FalAccount.objects.update(next_probe_at=timezone.now() - timedelta(seconds=1))


def sweep_now(run_at_commit) -> services.SweepReport:
    Generation.objects.in_flight().update(next_poll_at=None)
    with run_at_commit():
        return services.sweep()


@pytest.fixture
def locked(fake, user, run_at_commit, caplog):
    """fal has locked the account; `user` asked for a video, whose submit was refused."""
    fake.lock_account("Exhausted balance")
    with caplog.at_level(logging.INFO):
        generation = accept(user, run_at_commit)
    return generation


def test_an_account_lock_on_submit_pauses_dispatch_and_the_generation_waits(
    locked, fake, user, caplog
):
    generation = locked
    assert generation.status == "pending"
    assert generation.attempts == 0  # the refused try is not counted against it
    assert kinds(generation) == ["hold"]  # held, not released
    assert CreditAccount.objects.get(user=user).reserved == generation.cost_credits
    account = FalAccount.objects.get()
    assert account.dispatch_paused and account.pause_reason == "account_locked"
    assert account.pause_message.startswith("User is locked. Reason: Exhausted balance.")
    assert timedelta(seconds=25) < account.next_probe_at - timezone.now() <= timedelta(seconds=30)
    logged = " ".join(record.getMessage() for record in caplog.get_records("setup"))
    assert "event=fal_dispatch_paused reason=account_locked" in logged
    assert submits(fake) == 1


def test_nothing_else_is_submitted_while_paused(locked, fake, other_user, run_at_commit):
    second = accept(other_user, run_at_commit)
    for _ in range(3):
        report = sweep_now(run_at_commit)
        assert (report.dispatched, report.probed) == (0, 0)

    assert submits(fake) == 1  # no resubmit storm: not even the new generation's first try
    for generation in (locked, second):
        generation.refresh_from_db()
        assert generation.status == "pending"
        assert kinds(generation) == ["hold"]


def test_one_probe_per_interval_then_dispatch_resumes_once_fal_takes_work(
    locked, fake, other_user, run_at_commit, caplog
):
    second = accept(other_user, run_at_commit)
    probe_due()
    report = sweep_now(run_at_commit)  # still locked: the probe is refused
    assert report.probed == 1 and submits(fake) == 2
    assert fake.requests("submit")[-1].body["prompt"] == REQUEST_BODY["prompt"]
    account = FalAccount.objects.get()
    assert account.dispatch_paused
    assert account.next_probe_at > timezone.now() + timedelta(seconds=25)  # backs off
    assert sweep_now(run_at_commit).probed == 0 and submits(fake) == 2  # one per interval

    fake.unlock_account()
    probe_due()
    with caplog.at_level(logging.INFO):
        report = sweep_now(run_at_commit)

    assert report.probed == 1
    assert not FalAccount.objects.get().dispatch_paused
    assert "event=fal_dispatch_resumed by=probe" in caplog.text
    for generation in (locked, second):  # the probe, then the other waiting one
        generation.refresh_from_db()
        assert generation.status in ("queued", "running", "succeeded"), generation.status
    assert fake.counters["jobs_created"] == 2


def test_a_refused_key_on_submit_pauses_dispatch_too(fake, user, run_at_commit):
    fake.configure(accepted_keys=["a-key-that-is-not-ours"])
    generation = accept(user, run_at_commit)
    assert generation.status == "pending" and kinds(generation) == ["hold"]
    account = FalAccount.objects.get()
    assert (account.dispatch_paused, account.pause_reason) == (True, "credentials")
    assert account.pause_message == "No user found for Key ID and Secret"


def test_waiting_generations_do_not_expire_while_paused_and_get_a_fresh_deadline(
    locked, fake, run_at_commit
):
    Generation.objects.filter(pk=locked.pk).update(
        deadline_at=timezone.now() - timedelta(minutes=1)
    )
    sweep_now(run_at_commit)
    locked.refresh_from_db()
    assert locked.status == "pending" and kinds(locked) == ["hold"]

    fake.unlock_account()
    services.account.resume_dispatch()
    locked.refresh_from_db()
    assert locked.deadline_at > timezone.now() + timedelta(minutes=20)


# --- Staff ---------------------------------------------------------------------------------


def test_staff_resume_clears_the_pause_and_dispatches_pending_work(
    locked, fake, staff_user, client, run_at_commit
):
    fake.unlock_account()
    client.force_login(staff_user)
    overview = reverse("admin:generations_overview")
    page = client.get(overview).content.decode()
    assert "Dispatch to fal is paused" in page
    assert "User is locked. Reason: Exhausted balance." in page  # staff read fal's words
    assert reverse(RESUME) in page

    with run_at_commit():
        response = client.post(reverse(RESUME), {"next": overview})

    assert response.status_code == 302 and response["Location"] == overview
    assert not FalAccount.objects.get().dispatch_paused
    locked.refresh_from_db()
    assert locked.status in ("queued", "running"), locked.status
    assert submits(fake) == 2
    (entry,) = LogEntry.objects.filter(object_id="1", user=staff_user)
    assert entry.change_message.startswith("Resumed dispatch to fal")
    assert "Dispatch to fal is paused" not in client.get(overview).content.decode()


def test_resume_is_a_post_with_csrf_and_needs_the_permission(locked, staff_user):
    moderator = UserFactory(username="moderator", is_staff=True)
    moderator.groups.add(Group.objects.get(name=MODERATORS))
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    assert browser.get(reverse(RESUME)).status_code == 405
    assert browser.post(reverse(RESUME)).status_code == 403  # no CSRF token

    browser.force_login(moderator)
    index = browser.get(reverse("admin:index")).content.decode()
    assert "Dispatch to fal is paused" in index  # moderators see why...
    assert reverse(RESUME) not in index  # ...but may not resume
    moderator_client = Client()
    moderator_client.force_login(moderator)
    assert moderator_client.post(reverse(RESUME)).status_code == 403
    assert FalAccount.objects.get().dispatch_paused


def test_the_admin_index_shows_refused_credentials(staff_user, client):
    FalAccount.objects.create(
        credentials_failing_since=timezone.now(),
        credentials_message="No user found for Key ID and Secret",
    )
    client.force_login(staff_user)
    page = client.get(reverse("admin:index")).content.decode()
    assert "fal refuses our credentials on status polls" in page
    assert "No user found for Key ID and Secret" in page


# --- Users ---------------------------------------------------------------------------------


def test_users_read_that_videos_are_delayed_never_fals_words(locked, user, client):
    client.force_login(user)
    pages = {
        "list": client.get(reverse("generation-list")),
        "detail": client.get(reverse("generation-detail", args=[locked.pk])),
        "card": client.get(reverse("generation-status-partial", args=[locked.pk])),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        body = response.content.decode()
        for word in RAW_WORDS:
            assert word not in body, (name, word)
        assert 'data-status="failed"' not in body and "card__error" not in body, name
    assert "Videos are delayed." in pages["list"].content.decode()
    assert "safe in the queue" in pages["detail"].content.decode()
    assert "Delayed" in pages["card"].content.decode()

    api = client.get(f"/api/v1/generations/{locked.pk}/").json()
    assert api["status"] == "pending" and not api.get("error")


def test_users_see_no_delay_when_dispatch_runs(user, client):
    client.force_login(user)
    assert "Videos are delayed" not in client.get(reverse("generation-list")).content.decode()


def test_a_submit_arriving_while_paused_wakes_the_sweep_that_sends_the_probe(
    locked, fake, run_at_commit
):
    """The sweep sends the probes. If the worker holding the last sweep chain died, nothing
    would wake one while paused (accepts enqueue submits, not sweeps): a submit that finds
    dispatch paused makes sure a sweep runs (tasks run inline here)."""
    fake.unlock_account()
    probe_due()
    Generation.objects.filter(pk=locked.pk).update(next_poll_at=None)

    with run_at_commit():
        services.submit(generation_id=locked.pk)

    assert submits(fake) == 2  # the probe went out through the sweep the submit woke
    assert not FalAccount.objects.get().dispatch_paused
    locked.refresh_from_db()
    assert locked.status in ("queued", "running", "succeeded")
