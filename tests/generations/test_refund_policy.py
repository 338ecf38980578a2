"""The refund policy for videos fal bills but the user does not get: a content-policy
failure (driven through the real fal client against the fake fal) and the owner's cancel
after fal started rendering. Exact ledger entries, `check_ledger` clean, never more than
the quote, the owner's page in plain words, and staff editing the policy in the admin."""

from __future__ import annotations

import io
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from accounts.models import LedgerEntry
from generations import services
from generations import staff as generation_staff
from generations.models import Generation, RefundPolicy
from tests.credits import numbers
from tests.factories import REQUEST_BODY, UserFactory

pytestmark = pytest.mark.django_db

Reason = RefundPolicy.Reason
Action = RefundPolicy.Action
FLAGGED = {**REQUEST_BODY, "prompt": "A duel at noon [fal:content_policy]"}  # 320 credits


@pytest.fixture
def fal(real_fal):
    """The real gateway against a fresh fake fal (`real_fal` in tests/conftest.py)."""
    return real_fal(queue_seconds=0, run_seconds=0.05)


def set_policy(reason: str, action: str, percent: int | None = None) -> None:
    RefundPolicy.objects.update_or_create(
        reason=reason, defaults={"action": action, "share_percent": percent}
    )


def run_on_fal(user, params) -> Generation:
    """Accept, submit to fal, and follow it (staff's "check now") until it ends."""
    generation = services.accept(user=user, params=params).generation
    services.submit(generation_id=generation.pk)
    deadline = time.monotonic() + 10
    while not generation.is_final and time.monotonic() < deadline:
        time.sleep(0.05)
        generation = services.refresh_from_fal(generation=generation)
    assert generation.is_final, generation.status
    return generation


def money(generation) -> list[tuple]:
    return list(
        LedgerEntry.objects.filter(generation=generation)
        .order_by("id")
        .values_list("kind", "amount", "reserved_change", "reason")
    )


def assert_ledger_clean() -> None:
    assert ledger.broken_accounts() == []
    out = io.StringIO()
    call_command("check_ledger", stdout=out)
    assert "ledger OK" in out.getvalue()


# --- content policy, through fal --------------------------------------------------------------


def test_content_policy_is_refunded_by_default(fal, user):
    generation = run_on_fal(user, FLAGGED)

    assert (generation.status, generation.error_code) == ("failed", "content_policy")
    assert generation.settlement_policy == "refund"
    assert money(generation) == [
        ("hold", 0, 320, ""),
        ("release", 0, -320, "content_policy: refunded by policy"),
    ]
    assert numbers(user) == (1000, 0)
    assert_ledger_clean()


def test_content_policy_without_a_policy_row_is_refunded(fal, user):
    RefundPolicy.objects.all().delete()

    generation = run_on_fal(user, FLAGGED)

    assert generation.settlement_policy == "refund"
    assert [kind for kind, *_ in money(generation)] == ["hold", "release"]
    assert numbers(user) == (1000, 0)


def test_content_policy_charged_in_full(fal, user):
    set_policy(Reason.CONTENT_POLICY, Action.CHARGE)

    generation = run_on_fal(user, FLAGGED)

    assert generation.settlement_policy == "charge"
    assert money(generation) == [
        ("hold", 0, 320, ""),
        (
            "capture",
            -320,
            -320,
            "content_policy: charged in full by policy (fal billed this video)",
        ),
    ]
    assert numbers(user) == (680, 0)
    assert_ledger_clean()


def test_content_policy_charged_a_share(fal, user):
    set_policy(Reason.CONTENT_POLICY, Action.SHARE, 50)

    generation = run_on_fal(user, FLAGGED)

    assert generation.settlement_policy == "share:50"
    assert money(generation) == [
        ("hold", 0, 320, ""),
        ("capture", -160, -320, "content_policy: charged 50% by policy (fal billed this video)"),
    ]
    assert numbers(user) == (840, 0)
    assert_ledger_clean()


def test_a_share_never_exceeds_the_quote_and_rounds_down(fal, user):
    set_policy(Reason.CONTENT_POLICY, Action.SHARE, 99)
    params = {**FLAGGED, "duration": "4s", "resolution": "720p", "generate_audio": False}

    generation = run_on_fal(user, params)  # quoted 80 credits

    assert generation.cost_credits == 80
    [_hold, settlement] = money(generation)
    assert settlement[:3] == ("capture", -79, -80)
    assert numbers(user) == (921, 0)
    assert_ledger_clean()


@pytest.mark.parametrize("percent", [1, 33, 50, 99, 100, 250])
@pytest.mark.parametrize("cost", [80, 120, 320, 481])
def test_no_policy_charges_more_than_the_quote(percent, cost):
    for action in Action.values:
        charged = RefundPolicy.credits_to_charge(action=action, percent=percent, cost=cost)
        assert 0 <= charged <= cost
        if action == Action.SHARE:
            assert charged < cost  # a share is never the whole quote


def test_any_other_failure_is_always_refunded(fal, user):
    set_policy(Reason.CONTENT_POLICY, Action.CHARGE)
    set_policy(Reason.CANCELED_AFTER_START, Action.CHARGE)

    generation = run_on_fal(user, {**REQUEST_BODY, "prompt": "Storm clouds [fal:runner_error]"})

    assert (generation.status, generation.error_code) == ("failed", "upstream_error")
    assert generation.settlement_policy == ""
    assert money(generation)[-1] == ("release", 0, -320, "upstream_error")
    assert numbers(user) == (1000, 0)
    assert_ledger_clean()


def test_a_late_duplicate_failure_changes_nothing(fal, user):
    set_policy(Reason.CONTENT_POLICY, Action.SHARE, 50)
    generation = run_on_fal(user, FLAGGED)

    assert not services.fail(generation_id=generation.pk, code="content_policy", message="again")

    assert len(money(generation)) == 2
    assert numbers(user) == (840, 0)


# --- cancel after fal started rendering ---------------------------------------------------------


def queued_on_fal(user) -> Generation:
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.status == "queued" and generation.fal_request_id
    return generation


@pytest.fixture
def slow_fal(fal):
    fal.configure(queue_seconds=30, run_seconds=30)
    return fal


def started(generation: Generation) -> Generation:
    """fal reported that it started rendering (today a running generation cannot be
    canceled, so the start is recorded on a queued one, as a late status would leave it)."""
    Generation.objects.filter(pk=generation.pk).update(started_at=timezone.now())
    generation.refresh_from_db()
    return generation


def test_owners_cancel_after_start_is_charged_by_policy(
    slow_fal, user, django_capture_on_commit_callbacks
):
    set_policy(Reason.CANCELED_AFTER_START, Action.SHARE, 25)
    generation = started(queued_on_fal(user))

    with django_capture_on_commit_callbacks(execute=True):
        services.cancel(generation=generation, actor=user)

    generation.refresh_from_db()
    assert (generation.status, generation.settlement_policy) == ("canceled", "share:25")
    assert money(generation)[-1] == (
        "capture",
        -80,
        -320,
        "canceled_after_start: charged 25% by policy (fal billed this video)",
    )
    assert numbers(user) == (920, 0)
    assert slow_fal.requests("cancel")  # asked fal to stop all the same
    assert_ledger_clean()


def test_owners_cancel_after_start_is_refunded_by_default(slow_fal, user):
    generation = started(queued_on_fal(user))

    services.cancel(generation=generation, actor=user)

    generation.refresh_from_db()
    assert generation.settlement_policy == "refund"
    assert money(generation)[-1] == (
        "release",
        0,
        -320,
        "canceled_after_start: refunded by policy",
    )
    assert numbers(user) == (1000, 0)


def test_cancel_before_fal_started_is_released_whatever_the_policy(slow_fal, user):
    set_policy(Reason.CANCELED_AFTER_START, Action.CHARGE)
    generation = queued_on_fal(user)

    services.cancel(generation=generation, actor=user)

    generation.refresh_from_db()
    assert generation.settlement_policy == ""
    assert money(generation)[-1] == ("release", 0, -320, "canceled")
    assert numbers(user) == (1000, 0)


def test_staff_cancel_after_start_is_never_charged_to_the_user(slow_fal, user, staff_user):
    set_policy(Reason.CANCELED_AFTER_START, Action.CHARGE)
    generation = started(queued_on_fal(user))

    services.cancel(generation=generation, actor=staff_user)

    generation.refresh_from_db()
    assert generation.settlement_policy == ""
    assert money(generation)[-1] == ("release", 0, -320, "canceled")
    assert numbers(user) == (1000, 0)


# --- what the owner reads -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "percent", "card", "detail"),
    [
        (
            Action.REFUND,
            None,
            "Nothing was charged: 320 credits returned.",
            "Nothing was charged: 320 credits returned.",
        ),
        (
            Action.CHARGE,
            None,
            "This attempt was billed, so 320 credits were spent.",
            "This attempt was billed, so 320 credits were spent.",
        ),
        (
            Action.SHARE,
            50,
            "This attempt was billed, so 160 credits were spent and 160 returned.",
            "This attempt was billed, so 160 credits were spent and 160 returned.",
        ),
    ],
)
def test_the_owners_pages_say_which_policy_applied(
    fal, user, client, action, percent, card, detail
):
    set_policy(Reason.CONTENT_POLICY, action, percent)
    generation = run_on_fal(user, FLAGGED)
    client.force_login(user)

    listing = client.get(reverse("generation-list")).content.decode()
    page = client.get(reverse("generation-detail", args=[generation.pk])).content.decode()

    assert card in listing
    assert detail in page
    assert "credits returned" not in listing or action == Action.REFUND


def test_an_ordinary_failure_reads_as_before(user, client):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    services.fail(generation_id=generation.pk, code="upstream_error", message="fal broke")
    client.force_login(user)

    listing = client.get(reverse("generation-list")).content.decode()

    assert "320 credits returned" in listing
    assert "fal billed" not in listing and "Refunded ·" not in listing


# --- staff edit the policy in the admin --------------------------------------------------------


def test_staff_set_a_share_in_the_admin_with_a_reason(client, staff_user):
    policy = RefundPolicy.objects.get(reason=Reason.CONTENT_POLICY)
    client.force_login(staff_user)
    url = reverse("admin:generations_refundpolicy_change", args=[policy.pk])
    assert client.get(url).status_code == 200

    response = client.post(
        url,
        {
            "reason": Reason.CONTENT_POLICY,
            "action": Action.SHARE,
            "share_percent": "40",
            "change_reason": "fal bills refused prompts since December",
        },
    )

    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.action, policy.share_percent, policy.updated_by) == ("share", 40, staff_user)
    log = LogEntry.objects.get(object_id=str(policy.pk))
    assert log.user == staff_user
    assert "action: refund -> share" in log.change_message
    assert "share_percent: None -> 40" in log.change_message
    assert "Reason: fal bills refused prompts since December" in log.change_message
    assert client.get(reverse("admin:generations_refundpolicy_changelist")).status_code == 200


@pytest.mark.parametrize(
    ("action", "percent", "change_reason"),
    [
        (Action.SHARE, "", "a share needs a percent"),
        (Action.SHARE, "100", "a share is never the whole quote"),
        (Action.SHARE, "0", "nor nothing"),
        (Action.CHARGE, "50", "only a share takes a percent"),
        (Action.CHARGE, "", ""),  # no reason given
    ],
)
def test_the_admin_refuses_an_invalid_policy(client, staff_user, action, percent, change_reason):
    policy = RefundPolicy.objects.get(reason=Reason.CONTENT_POLICY)
    client.force_login(staff_user)

    response = client.post(
        reverse("admin:generations_refundpolicy_change", args=[policy.pk]),
        {
            "reason": Reason.CONTENT_POLICY,
            "action": action,
            "share_percent": percent,
            "change_reason": change_reason,
        },
    )

    assert response.status_code == 200  # the form again, with its error
    policy.refresh_from_db()
    assert (policy.action, policy.share_percent) == ("refund", None)
    assert not LogEntry.objects.exists()


def test_only_staff_with_the_permission_edit_the_policy(client):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    policy = RefundPolicy.objects.get(reason=Reason.CONTENT_POLICY)
    response = client.get(reverse("admin:generations_refundpolicy_change", args=[policy.pk]))
    assert response.status_code == 403


def test_a_share_that_rounds_to_nothing_is_a_refund(fal, user):
    set_policy(Reason.CONTENT_POLICY, Action.SHARE, 1)
    params = {**FLAGGED, "duration": "4s", "resolution": "720p", "generate_audio": False}

    generation = run_on_fal(user, params)  # 1% of 80 credits rounds down to 0

    assert money(generation)[-1] == ("release", 0, -80, "content_policy: refunded by policy")
    assert numbers(user) == (1000, 0)
    assert_ledger_clean()


def test_staff_can_refund_what_a_policy_charged(fal, user, staff_user):
    set_policy(Reason.CONTENT_POLICY, Action.SHARE, 50)
    generation = run_on_fal(user, FLAGGED)

    entry, refunded_now = generation_staff.refund_generation(
        generation=generation, actor=staff_user, reason="goodwill"
    )

    assert (refunded_now, entry.amount) == (True, 160)
    assert numbers(user) == (1000, 0)
    assert_ledger_clean()
