"""How many SQL queries the hot paths cost, so an N+1 cannot slip in unnoticed.

Lists must cost the same for 2 rows as for a full page; one sweep pass over N in-flight
generations may grow with N, by a small constant per generation (one status call to fal,
one conditional UPDATE). The budgets are today's counts: a change that raises one should
be a decision, not an accident.

The sweep is measured on SQLite, where it polls sequentially on this connection; on
PostgreSQL it polls from a thread pool whose connections the capture cannot see, so this
module is not marked `pg`.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import timedelta

import factory
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import ledger, tokens
from generations import services
from generations.models import Generation
from tests.factories import REQUEST_BODY, GenerationFactory, UserFactory

pytestmark = pytest.mark.django_db

# Budgets (queries). Measured, then fixed here; raise one only with a reason.
# Savepoints are not counted: how deep the caller's transaction nests is not the point.
# accept: the active prices (options and quote from one read), blocked terms, the account
# row lock and the in-flight count (only while a cap applies), the insert, the hold
# (UPDATE ... RETURNING on the account, the entry insert). An Idempotency-Key costs no
# lookup: the insert's unique key finds a replay.
ACCEPT_BUDGET = 7
ACCEPT_WITHOUT_CAP_BUDGET = 5
# With the local cache warm (LOCAL_CACHE_SECONDS > 0), prices and blocked terms are not
# read: the insert and the hold.
ACCEPT_CACHED_WITHOUT_CAP_BUDGET = 3
# A replay: the insert that the key refuses, then the earlier generation by its key
# (with the local cache cold, also the prices and the blocked terms).
REPLAY_CACHED_WITHOUT_CAP_BUDGET = 2
REPLAY_WITHOUT_CAP_BUDGET = 4
# Bearer token (with its user), the page; the portal adds session, user and the count,
# and whether dispatch to fal is paused (one read per page: the "videos are delayed"
# banner and the cards' "delayed" share it).
API_GENERATION_LIST_BUDGET = (
    4  # +1: the estimates read recent render times once per kind (cached 60 s)
    + 1  # the page's input images (models that take several), prefetched at once
)
API_LEDGER_LIST_BUDGET = 3
PORTAL_GENERATION_LIST_BUDGET = 7  # +1: the same estimates query
# The due query, the in-flight count, the next due time; per generation polled: the
# conditional UPDATE from queued to running, then (already running) the one that records
# logs and the next poll time.
SWEEP_FIXED_BUDGET = 3
SWEEP_PER_GENERATION_BUDGET = 2

CAT = "https://images.example.com/cat.jpg"
HAT = "https://images.example.com/hat.jpg"


def count_queries(action) -> int:
    with CaptureQueriesContext(connection) as captured:
        action()
    return len([q for q in captured.captured_queries if not SAVEPOINT.match(q["sql"])])


SAVEPOINT = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b")


def bearer(user) -> APIClient:
    _, secret = tokens.create_token(user=user, name="budget")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def make_generations(user, n: int, **fields) -> list[Generation]:
    return [GenerationFactory(owner=user, **fields) for _ in range(n)]


@pytest.fixture
def lifted_limits(settings):
    settings.API_CREATE_RATE = None
    settings.API_READ_RATE = None
    settings.MAX_IN_FLIGHT_PER_USER = 0


# --- accept ------------------------------------------------------------------------------


def test_accept_costs_a_fixed_number_of_queries(user):
    assert count_queries(lambda: services.accept(user=user, params=REQUEST_BODY)) <= ACCEPT_BUDGET


def test_accept_without_an_in_flight_cap_skips_the_lock_and_the_count(user, lifted_limits):
    queries = count_queries(lambda: services.accept(user=user, params=REQUEST_BODY))
    assert queries <= ACCEPT_WITHOUT_CAP_BUDGET


def test_accept_does_not_grow_with_the_users_history(user, settings, lifted_limits):
    settings.MAX_IN_FLIGHT_PER_USER = 5  # the cap's count query is in the budget
    first = count_queries(lambda: services.accept(user=user, params=REQUEST_BODY))
    make_generations(user, 30, status=Generation.Status.SUCCEEDED)
    later = count_queries(lambda: services.accept(user=user, params=REQUEST_BODY))
    assert later == first <= ACCEPT_BUDGET


def test_an_idempotency_key_costs_no_lookup(user, lifted_limits):
    without_key = count_queries(lambda: services.accept(user=user, params=REQUEST_BODY))
    with_key = count_queries(
        lambda: services.accept(user=user, params=REQUEST_BODY, idempotency_key="budget-0")
    )
    assert with_key == without_key <= ACCEPT_WITHOUT_CAP_BUDGET


def test_accept_with_the_local_cache_warm_reads_no_prices_or_terms(user, settings, lifted_limits):
    settings.LOCAL_CACHE_SECONDS = 60
    services.accept(user=user, params=REQUEST_BODY)  # warms the cache

    queries = count_queries(
        lambda: services.accept(user=user, params=REQUEST_BODY, idempotency_key="budget-2")
    )

    assert queries <= ACCEPT_CACHED_WITHOUT_CAP_BUDGET


@pytest.mark.pg
def test_on_postgresql_the_hold_is_one_statement(user, settings, lifted_limits):
    """The hold's UPDATE of the account and its entry's INSERT are one statement on
    PostgreSQL (a data-modifying CTE); SQLite has no such CTE and takes two."""
    settings.LOCAL_CACHE_SECONDS = 60
    services.accept(user=user, params=REQUEST_BODY)  # warms the cache

    queries = count_queries(
        lambda: services.accept(user=user, params=REQUEST_BODY, idempotency_key="budget-3")
    )

    hold = 1 if connection.vendor == "postgresql" else 2
    assert queries == 1 + hold  # the generation's insert, the hold


def replay_queries(user) -> int:
    services.accept(user=user, params=REQUEST_BODY, idempotency_key="budget-1")
    replays = []
    queries = count_queries(
        lambda: replays.append(
            services.accept(user=user, params=REQUEST_BODY, idempotency_key="budget-1")
        )
    )
    assert replays[0].replayed
    return queries


def test_idempotent_replay_costs_the_refused_insert_and_one_lookup(user, lifted_limits):
    assert replay_queries(user) <= REPLAY_WITHOUT_CAP_BUDGET


def test_idempotent_replay_with_the_local_cache_warm(user, settings, lifted_limits):
    settings.LOCAL_CACHE_SECONDS = 60
    assert replay_queries(user) <= REPLAY_CACHED_WITHOUT_CAP_BUDGET


# --- lists -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 20])
def test_api_generation_list_is_constant_in_rows(n, user, lifted_limits, django_assert_num_queries):
    make_generations(user, n)
    make_generations(UserFactory(), 3)  # someone else's rows are not read
    client = bearer(user)
    with django_assert_num_queries(API_GENERATION_LIST_BUDGET):
        response = client.get("/api/v1/generations/")
    assert response.status_code == 200
    assert len(response.json()["results"]) == n


@pytest.mark.parametrize("n", [2, 20])
def test_api_ledger_list_is_constant_in_rows(n, lifted_limits, django_assert_num_queries):
    owner = UserFactory(credits=100)
    for _ in range(n - 1):
        ledger.grant(user=owner, amount=1, reason="budget")
    client = bearer(owner)
    with django_assert_num_queries(API_LEDGER_LIST_BUDGET):
        response = client.get("/api/v1/ledger/")
    assert response.status_code == 200
    assert len(response.json()["results"]) == n


@pytest.mark.parametrize("n", [2, 12])
def test_portal_gallery_is_constant_in_rows(n, client, user, django_assert_num_queries):
    make_generations(user, n - 1, status=Generation.Status.SUCCEEDED)
    make_generations(user, 1, status=Generation.Status.RUNNING)  # a polling card
    client.force_login(user)
    with django_assert_num_queries(PORTAL_GENERATION_LIST_BUDGET):
        response = client.get(reverse("generation-list"))
    assert response.status_code == 200
    assert len(response.context["generations"]) == n


# --- one sweep pass ------------------------------------------------------------------------


def running_generations(user, n: int) -> list[Generation]:
    """N generations rendering on the simulated fal, due for a status poll now."""
    started_ms = int(time.time() * 1000)
    now = timezone.now()
    return make_generations(
        user,
        n,
        status=Generation.Status.RUNNING,
        fal_request_id=factory_request_id(started_ms),
        submitted_at=now,
        started_at=now,
        next_poll_at=now - timedelta(seconds=1),
        deadline_at=now + timedelta(hours=1),
    )


def factory_request_id(started_ms: int):
    return factory.LazyFunction(lambda: f"sim-ok-{started_ms}-{uuid.uuid4().hex[:12]}")


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="on PostgreSQL the sweep polls from a thread pool whose connections the "
    "query capture cannot see; the budget is the same code path, measured on SQLite",
)
@pytest.mark.parametrize("n", [1, 5, 25])
def test_one_sweep_pass_is_linear_with_a_small_constant(n, user, settings):
    settings.FAL_SIMULATED_QUEUE_SECONDS = 0
    settings.FAL_SIMULATED_RUN_SECONDS = 3600  # still rendering: poll, record, re-arm
    settings.PUBLIC_BASE_URL = ""
    running_generations(user, n)

    queries = count_queries(lambda: services.sweep())

    assert queries <= SWEEP_FIXED_BUDGET + SWEEP_PER_GENERATION_BUDGET * n, queries
    polled = Generation.objects.filter(status=Generation.Status.RUNNING)
    assert polled.count() == n
    assert all(g.next_poll_at > timezone.now() for g in polled)  # each was polled


@pytest.mark.parametrize(
    "extra, listed",
    [
        (
            {"model": "fal-ai/veo3.1/reference-to-video", "image_urls": [CAT, HAT]},
            [("image_urls", 0, CAT), ("image_urls", 1, HAT)],
        ),
        ({"image_url": "https://images.example.com/boat.jpg"}, []),
    ],
    ids=["references", "one-image"],
)
def test_the_answer_to_a_create_lists_its_input_images_without_reading_them(
    extra, listed, user, lifted_limits
):
    client = bearer(user)
    body = {"prompt": "A cat trying on a hat", **extra}
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/v1/generations/", body, format="json")

    assert response.status_code == 201, response.json()
    shown = [(i["field"], i["position"], i["url"]) for i in response.json()["input_images"]]
    assert shown == listed
    reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if "generations_generationimage" in sql]
    generation = Generation.objects.get(pk=response.json()["id"])
    stored = generation.input_images.order_by("slot", "position")
    assert [(i.slot, i.position, i.image_url) for i in stored] == listed
