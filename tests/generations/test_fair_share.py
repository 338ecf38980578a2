"""Fair share of fal's slots (generations/fair_share.py): our own queue in front of fal
with FAL_MAX_CONCURRENCY, deficit round robin across users weighted by seconds of video and
staff's share weight, the per-user cap, no change at all without a limit, and our own
queue_position. Concurrency on PostgreSQL: test_fair_share_concurrency.py; two workers on
Redis against the fake fal: tests/e2e/test_fair_share_redis.py."""

from __future__ import annotations

import uuid
from collections import Counter, deque

import pytest

from generations import fair_share, services
from generations.fair_share import Round, Waiting, drr_order
from generations.models import FairShareTurn, Generation
from tests.factories import REQUEST_BODY, GenerationFactory, UserFactory
from veoproject.exceptions import LimitExceeded

S = Generation.Status
SHORT = {**REQUEST_BODY, "duration": "4s", "resolution": "720p", "generate_audio": False}


def jobs(owner: int, count: int, *, seconds: int = 8, weight: int = 1) -> deque[Waiting]:
    return deque(Waiting(uuid.uuid4(), owner, seconds, weight) for _ in range(count))


def owners(order: list[Waiting]) -> list[int]:
    return [job.owner_id for job in order]


# --- The order, pure -----------------------------------------------------------------------


def test_a_user_with_fifty_waiting_does_not_delay_a_user_with_one():
    queues = {1: jobs(1, 50), 2: jobs(2, 1)}

    order = drr_order(queues, Round(), limit=51)

    assert owners(order).index(2) == 1  # one turn of the heavy user, then the light one
    assert owners(order[2:]) == [1] * 49


def test_a_weight_of_two_starts_twice_the_video_per_turn():
    queues = {1: jobs(1, 20, weight=2), 2: jobs(2, 20)}

    order = drr_order(queues, Round(), limit=12)

    assert owners(order) == [1, 1, 2] * 4


def test_turns_are_counted_in_seconds_of_video_not_in_jobs():
    queues = {1: jobs(1, 20, seconds=4), 2: jobs(2, 20, seconds=8)}

    order = drr_order(queues, Round(), limit=30)

    seconds = Counter()
    for job in order:
        seconds[job.owner_id] += job.seconds
    assert owners(order[:6]) == [1, 1, 2, 1, 1, 2]
    assert seconds[1] == seconds[2] == 80


def test_a_longer_video_waits_for_its_credit_to_build_up():
    # 6 s videos with 8 s turns: 8, then 2 + 8 = 10 (one, 4 left), then 12 (two)...
    queues = {1: jobs(1, 10, seconds=6), 2: jobs(2, 10, seconds=6)}
    state = Round()

    order = drr_order(queues, state, limit=8)

    assert owners(order) == [1, 2, 1, 2, 1, 1, 2, 2]


def test_granting_one_slot_at_a_time_gives_the_same_order_as_all_at_once():
    def fresh() -> dict[int, deque[Waiting]]:
        return {
            1: jobs(1, 12, seconds=4, weight=3),
            2: jobs(2, 5, seconds=6),
            3: jobs(3, 7, seconds=8, weight=2),
        }

    all_at_once = owners(drr_order(fresh(), Round(), limit=24))
    queues, state, one_by_one = fresh(), Round(), []
    for _ in range(24):
        one_by_one += owners(drr_order(queues, state, limit=1))

    assert one_by_one == all_at_once
    assert sorted(Counter(all_at_once).items()) == [(1, 12), (2, 5), (3, 7)]


def test_the_turn_moves_on_after_the_user_who_had_it():
    queues = {1: jobs(1, 3), 2: jobs(2, 3), 3: jobs(3, 3)}

    order = drr_order(queues, Round(cursor=2), limit=4)

    assert owners(order) == [3, 1, 2, 3]


# --- Through the services --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_cap(settings):
    settings.MAX_IN_FLIGHT_PER_USER = 0  # the cap has its own test


@pytest.fixture
def fal_keeps_jobs_queued(settings):
    """The simulated fal holds what it is sent in its queue (tests/generations/conftest.py
    makes it finish at once). Every submit runs a sweep inline, which polls what was
    submitted a second or more before: on a loaded machine an instant fal would finish a
    granted job there, free its slot and grant the next, whatever the order tested."""
    settings.FAL_SIMULATED_QUEUE_SECONDS = 3600


@pytest.fixture
def heavy(db):
    return UserFactory(credits=100_000)


@pytest.fixture
def light(db):
    return UserFactory(credits=100_000)


def accept(user, **params) -> Generation:
    return services.accept(user=user, params={**SHORT, **params}).generation


def status_of(generation: Generation) -> str:
    generation.refresh_from_db()
    return generation.status


def test_without_a_limit_nothing_waits_and_nothing_changes(settings, heavy):
    settings.FAL_MAX_CONCURRENCY = 0
    accepted = [accept(heavy) for _ in range(6)]

    assert {status_of(g) for g in accepted} == {S.PENDING}
    assert fair_share.fill_slots() == []
    assert not FairShareTurn.objects.exists()
    services.submit(generation_id=accepted[0].pk)
    assert status_of(accepted[0]) == S.QUEUED


def test_with_a_limit_only_n_are_granted_and_the_rest_wait_as_queued(
    settings, fal_keeps_jobs_queued, heavy, django_capture_on_commit_callbacks
):
    settings.FAL_MAX_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        accepted = [accept(heavy) for _ in range(5)]

    statuses = Counter(status_of(g) for g in accepted)
    assert statuses == {S.QUEUED: 2, S.WAITING: 3}  # 2 at fal (submitted), 3 in our queue
    assert fair_share.slots_in_use() == 2
    assert {g.public_status for g in accepted} == {"queued"}
    assert fair_share.fill_slots() == []  # no slot is free


def test_a_freed_slot_goes_to_the_light_user_first(
    settings, fal_keeps_jobs_queued, heavy, light, django_capture_on_commit_callbacks
):
    settings.FAL_MAX_CONCURRENCY = 2
    with django_capture_on_commit_callbacks(execute=True):
        heavy_jobs = [accept(heavy) for _ in range(6)]
        light_job = accept(light)
    at_fal = [g for g in heavy_jobs if status_of(g) == S.QUEUED]
    assert len(at_fal) == 2 and status_of(light_job) == S.WAITING

    with django_capture_on_commit_callbacks(execute=True):
        services.cancel(generation=at_fal[0])  # a slot is freed: refilled at commit

    assert status_of(light_job) == S.QUEUED
    assert light_job.fal_request_id
    assert fair_share.slots_in_use() == 2
    assert Counter(status_of(g) for g in heavy_jobs) == {S.QUEUED: 1, S.CANCELED: 1, S.WAITING: 4}


def test_a_finished_video_frees_its_slot_for_the_next_in_line(
    settings, heavy, light, django_capture_on_commit_callbacks
):
    settings.FAL_MAX_CONCURRENCY = 1
    with django_capture_on_commit_callbacks(execute=True):
        first = accept(heavy, duration="8s")  # one 8 s video: heavy's whole turn
        accept(heavy, duration="8s")
        light_job = accept(light, duration="8s")
        for _ in range(5):  # polls: the simulated fal finishes `first`; copied, captured
            Generation.objects.in_flight().update(next_poll_at=None)
            services.sweep()
            if status_of(first) == S.SUCCEEDED:
                break

    assert status_of(first) == S.SUCCEEDED
    assert status_of(light_job) in (S.QUEUED, S.SUCCEEDED)


def test_the_per_user_cap_counts_waiting_generations(settings, heavy, light):
    settings.FAL_MAX_CONCURRENCY = 1
    settings.MAX_IN_FLIGHT_PER_USER = 3
    for _ in range(3):
        accept(heavy)

    with pytest.raises(LimitExceeded):
        accept(heavy)
    accept(light)  # another user's own cap


def test_queue_position_is_our_own_in_the_fair_order(settings, heavy, light, bearer_client):
    settings.FAL_MAX_CONCURRENCY = 1
    heavy_jobs = [accept(heavy, duration="8s") for _ in range(4)]
    light_job = accept(light, duration="8s")
    api = bearer_client(light)

    body = api.get(f"/api/v1/generations/{light_job.pk}/").json()

    # Nothing granted yet: heavy's first, then the light user's turn.
    assert (body["status"], body["queue_position"]) == ("queued", 1)
    mine = bearer_client(heavy).get("/api/v1/generations/").json()["results"]
    positions = {row["id"]: row["queue_position"] for row in mine}
    assert [positions[str(g.pk)] for g in heavy_jobs] == [0, 2, 3, 4]
    assert fair_share.queue_positions()[light_job.pk] == 1


def test_estimated_ready_at_includes_the_wait_in_our_queue(settings, heavy, bearer_client):
    settings.FAL_MAX_CONCURRENCY = 1
    settings.GENERATION_TYPICAL_SECONDS = 100
    heavy_jobs = [accept(heavy) for _ in range(3)]
    api = bearer_client(heavy)

    ready = [
        api.get(f"/api/v1/generations/{g.pk}/").json()["estimated_ready_at"] for g in heavy_jobs
    ]

    assert ready[0] < ready[1] < ready[2]  # a turn of the slot more for each in front


def test_fifo_policy_grants_in_acceptance_order(
    settings, heavy, light, django_capture_on_commit_callbacks
):
    settings.FAL_MAX_CONCURRENCY = 1
    settings.FAL_QUEUE_POLICY = "fifo"
    heavy_jobs = [accept(heavy) for _ in range(3)]
    light_job = accept(light)

    assert fair_share.queue_positions()[light_job.pk] == 3
    assert fair_share.fill_slots() == [heavy_jobs[0].pk]


def test_staff_weight_gives_a_user_more_turns(settings, heavy, light):
    settings.FAL_MAX_CONCURRENCY = 1
    heavy.share_weight = 3
    heavy.save(update_fields=["share_weight"])
    for _ in range(6):
        accept(heavy)
        accept(light)

    order = sorted(fair_share.queue_positions().items(), key=lambda item: item[1])
    by_owner = {g.pk: g.owner_id for g in Generation.objects.all()}
    first_eight = [by_owner[pk] for pk, _ in order[:8]]
    # 4 s videos and 8 s turns: light starts 2 a turn, heavy (weight 3) 6.
    assert first_eight.count(heavy.pk) == 6 and first_eight.count(light.pk) == 2


def test_the_round_survives_between_grants(settings, heavy, light):
    settings.FAL_MAX_CONCURRENCY = 1
    for _ in range(3):
        accept(heavy, duration="8s")
        accept(light, duration="8s")

    granted = []
    for _ in range(4):
        granted += fair_share.fill_slots()
        Generation.objects.filter(pk__in=granted).update(status=S.CANCELED)  # slot freed

    assert [Generation.objects.get(pk=pk).owner_id for pk in granted] == [
        heavy.pk,
        light.pk,
        heavy.pk,
        light.pk,
    ]


def test_the_sweep_grants_a_slot_a_lost_refill_missed(settings, heavy):
    settings.FAL_MAX_CONCURRENCY = 2
    waiting = GenerationFactory(owner=heavy, status=S.WAITING)  # its fill never ran

    services.sweep()

    assert status_of(waiting) == S.PENDING
    assert waiting.deadline_at is not None and waiting.next_poll_at is not None


def test_a_waiting_generation_can_be_canceled_and_is_released(settings, heavy):
    settings.FAL_MAX_CONCURRENCY = 1
    accept(heavy)
    second = accept(heavy)

    services.cancel(generation=second, actor=heavy)

    assert status_of(second) == S.CANCELED
    heavy.credit_account.refresh_from_db()
    assert heavy.credit_account.reserved == 80  # the first one's hold only


def test_lifting_the_limit_lets_everything_waiting_go(settings, heavy):
    settings.FAL_MAX_CONCURRENCY = 1
    accepted = [accept(heavy) for _ in range(3)]
    settings.FAL_MAX_CONCURRENCY = 0

    services.sweep()

    assert {status_of(g) for g in accepted} == {S.PENDING}


def test_staff_edit_the_weight_in_the_user_admin(admin_client_for, superuser, heavy):
    client = admin_client_for(superuser)

    page = client.get(f"/admin/accounts/user/{heavy.pk}/change/")

    assert page.status_code == 200
    assert b'name="share_weight"' in page.content


def test_the_card_says_our_place_in_line_while_waiting_for_a_slot(settings, heavy, light, client):
    settings.FAL_MAX_CONCURRENCY = 1
    for _ in range(4):
        accept(heavy, duration="8s")
    light_job = accept(light, duration="8s")
    client.force_login(light)

    page = client.get(f"/videos/{light_job.pk}/").content.decode()

    # The same number as the API's queue_position (1: heavy's first, then this one).
    assert 'data-testid="place-in-line">1 ahead in line<' in page
