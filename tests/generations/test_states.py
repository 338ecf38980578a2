"""The state machine (generations/states.py): the one table of allowed status changes, the
one helper that makes them, and the model's questions read from that table."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone

from generations import states
from generations.models import Generation
from generations.states import TRANSITIONS, IllegalTransition, Status, transition
from tests.factories import GenerationFactory

pytestmark = pytest.mark.django_db

ALLOWED = [(source, target) for source in Status for target in sorted(TRANSITIONS[source])]
FORBIDDEN = [
    (source, target) for source in Status for target in Status if target not in TRANSITIONS[source]
]


def _ids(pair: tuple[Status, Status]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


# --- The table ---------------------------------------------------------------------------


def test_the_table_has_a_row_for_every_status_and_every_status_is_reachable():
    assert set(TRANSITIONS) == set(Status)
    # `pending` is where accept() starts, and where a refused submit goes back to; with
    # FAL_MAX_CONCURRENCY accept() starts at `waiting` (generations.fair_share).
    assert set().union(*TRANSITIONS.values()) == set(Status) - {Status.WAITING}


def test_final_states_have_no_way_out_and_the_rest_are_in_flight():
    assert states.FINAL == (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
    assert states.IN_FLIGHT == (
        Status.WAITING,
        Status.PENDING,
        Status.SUBMITTING,
        Status.QUEUED,
        Status.RUNNING,
    )
    assert Generation.FINAL == states.FINAL and Generation.IN_FLIGHT == states.IN_FLIGHT
    for final in states.FINAL:
        assert TRANSITIONS[final] == frozenset()
        for target in Status:
            with pytest.raises(IllegalTransition):
                transition(GenerationFactory(status=final).pk, to=target, sources=[final])


def test_only_generations_fal_has_not_started_rendering_are_cancelable():
    assert states.CANCELABLE == (
        Status.WAITING,
        Status.PENDING,
        Status.SUBMITTING,
        Status.QUEUED,
    )
    assert not states.may_move(Status.RUNNING, Status.CANCELED)


@pytest.mark.parametrize("move", ALLOWED, ids=_ids)
def test_every_allowed_transition_happens_once(move):
    source, target = move
    generation = GenerationFactory(status=source)
    # A move into the same status (a submit claimed again) needs its own guard: the lease.
    guard = (
        {"where": Q(lease_until__isnull=True), "lease_until": timezone.now() + timedelta(minutes=2)}
        if source == target
        else {}
    )

    assert transition(generation.pk, to=target, sources=[source], **guard) is True
    generation.refresh_from_db()
    assert generation.status == target
    assert transition(generation.pk, to=target, sources=[source], **guard) is False


@pytest.mark.parametrize("move", ALLOWED, ids=_ids)
def test_by_default_every_source_the_table_allows_may_move(move):
    source, target = move
    generation = GenerationFactory(status=source, lease_until=None)

    assert transition(generation.pk, to=target, where=Q(lease_until__isnull=True), attempts=3)
    generation.refresh_from_db()
    assert (generation.status, generation.attempts) == (target, 3)


@pytest.mark.parametrize("move", FORBIDDEN, ids=_ids)
def test_a_transition_not_in_the_table_raises_and_changes_nothing(move):
    source, target = move
    generation = GenerationFactory(status=source)

    with pytest.raises(IllegalTransition):
        transition(generation.pk, to=target, sources=[source])

    generation.refresh_from_db()
    assert generation.status == source


def test_a_generation_in_another_status_is_left_alone():
    """Not an error: another step (a webhook, the sweep, a cancel) got there first."""
    generation = GenerationFactory(status=Status.PENDING)

    assert transition(generation.pk, to=Status.RUNNING) is False
    generation.refresh_from_db()
    assert generation.status == Status.PENDING


def test_an_unknown_target_or_no_source_raises():
    generation = GenerationFactory(status=Status.PENDING)

    with pytest.raises(IllegalTransition):
        transition(generation.pk, to="archived")  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition):
        transition(generation.pk, to=Status.FAILED, sources=[])


def test_entering_a_final_status_stamps_it_and_ends_the_lease_and_the_polls():
    now = timezone.now()
    generation = GenerationFactory(
        status=Status.RUNNING, lease_until=now + timedelta(minutes=1), next_poll_at=now
    )

    assert transition(generation.pk, to=Status.FAILED, error_code="timeout")

    generation.refresh_from_db()
    assert generation.completed_at is not None and generation.completed_at >= now
    assert (generation.lease_until, generation.next_poll_at) == (None, None)
    assert generation.error_code == "timeout"


def test_the_database_constraint_lists_the_same_statuses_without_a_new_migration():
    out = StringIO()
    call_command("makemigrations", "generations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


# --- The model asks the table ------------------------------------------------------------

PUBLIC = {
    Status.WAITING: "is_queued",  # in our own queue for one of fal's slots
    Status.PENDING: "is_pending",
    Status.SUBMITTING: "is_pending",
    Status.QUEUED: "is_queued",
    Status.RUNNING: "is_running",
    Status.SUCCEEDED: "is_succeeded",
    Status.FAILED: "is_failed",
    Status.CANCELED: "is_canceled",
}


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.value)
def test_model_properties_follow_the_table(status):
    generation = Generation(status=status)

    assert generation.is_final is (status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED))
    assert generation.is_cancelable is (
        status in (Status.WAITING, Status.PENDING, Status.SUBMITTING, Status.QUEUED)
    )
    asked = {name for name in set(PUBLIC.values()) if getattr(generation, name)}
    assert asked == {PUBLIC[status]}


def test_a_playable_video_is_a_stored_video_of_a_succeeded_visible_generation():
    def playable(**fields) -> bool:
        return Generation(**fields).has_playable_video

    video = "private/videos/1/x.mp4"
    assert playable(status=Status.SUCCEEDED, video=video)
    assert not playable(status=Status.SUCCEEDED, video="")
    assert not playable(
        status=Status.SUCCEEDED,
        video=video,
        moderation_state=Generation.Moderation.HIDDEN,
        moderation_reason="x",
    )
    assert not playable(status=Status.FAILED, video=video)
    assert not playable(status=Status.RUNNING, video=video)


# --- Templates ask the model ---------------------------------------------------------------

TEMPLATES = Path(settings.BASE_DIR) / "templates"
STATUS_WORDS = "|".join(s.value for s in Status)
STATUS_COMPARISONS = [
    re.compile(r"\w*status\s*(==|!=|\bin\b|\bnot\s+in\b)"),  # generation.status == ...
    re.compile(rf"(==|!=)\s*[\"']({STATUS_WORDS})[\"']"),  # ... == "succeeded"
    re.compile(rf"[\"']({STATUS_WORDS})[\"']\s*(==|!=)"),  # "succeeded" == ...
]


def test_no_template_compares_a_status_string():
    """Templates ask the model (`is_cancelable`, `has_playable_video`, `is_failed`...), so
    a new status or a changed rule is made in one place (generations/states.py)."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for tag in re.findall(r"{%.*?%}", line):
                if any(pattern.search(tag) for pattern in STATUS_COMPARISONS):
                    found.append(f"{path.relative_to(TEMPLATES)}:{number}: {tag}")
    assert found == []
