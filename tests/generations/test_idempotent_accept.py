"""Idempotency-Key without a lookup first: the insert's unique key finds a replay.

Accept no longer reads the key before it works: a first request pays no lookup. A
replay is found when the generation's insert hits the (owner, key) unique constraint, and
any refusal on the way (blocked term, in-flight cap, a quote already used, a price above
`max_cost_credits`, too few credits) first answers the key's first generation if it has
one. So a retry always gets the first answer, never a 429 or a 409 it did not get the
first time, and nothing is held twice. The race of one key (the same request sent twice
at once) runs on PostgreSQL too (`pg`).
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection

from accounts.models import CreditAccount, LedgerEntry
from generations import quotes, services
from generations.models import BlockedTerm, Generation, PricingRule, Resolution
from tests.factories import REQUEST_BODY, UserFactory, image_upload
from tests.races import race
from veoproject.exceptions import (
    IdempotencyKeyReused,
    InsufficientCredits,
    LimitExceeded,
)

PRICE = 320  # REQUEST_BODY: 8 s at 1080p with audio, 40 credits a second


def accept(user, key: str | None = "key-1", **extra):
    return services.accept(user=user, params={**REQUEST_BODY, **extra}, idempotency_key=key)


def numbers(user) -> tuple[int, int]:
    account = CreditAccount.objects.get(user=user)
    return account.balance, account.reserved


def holds(user) -> int:
    return LedgerEntry.objects.filter(account__user=user, kind=LedgerEntry.Kind.HOLD).count()


@pytest.mark.django_db
def test_a_replay_answers_the_first_generation_and_holds_once(user):
    first = accept(user)
    again = accept(user)

    assert not first.replayed
    assert again.replayed
    assert again.generation.pk == first.generation.pk
    assert Generation.objects.filter(owner=user).count() == 1
    assert holds(user) == 1
    assert numbers(user) == (1000, PRICE)


@pytest.mark.django_db
def test_the_api_replays_the_first_response(api, user, settings):
    settings.API_CREATE_RATE = None
    headers = {"HTTP_IDEMPOTENCY_KEY": "api-key"}
    first = api.post("/api/v1/generations/", REQUEST_BODY, format="json", **headers)
    again = api.post("/api/v1/generations/", REQUEST_BODY, format="json", **headers)

    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["cost_credits"] == first.json()["cost_credits"] == PRICE
    assert holds(user) == 1


@pytest.mark.django_db
def test_the_same_key_with_another_request_is_refused_and_holds_nothing(user):
    accept(user)
    with pytest.raises(IdempotencyKeyReused):
        accept(user, prompt="Another video altogether")

    assert holds(user) == 1


@pytest.mark.django_db
def test_keys_are_per_user(user, other_user):
    mine, theirs = accept(user), accept(other_user)

    assert not theirs.replayed
    assert theirs.generation.pk != mine.generation.pk


# --- A refusal now does not hide the first answer ----------------------------------------


@pytest.mark.django_db
def test_a_replay_at_the_in_flight_cap_answers_the_first_generation_not_429(user, settings):
    settings.MAX_IN_FLIGHT_PER_USER = 1
    first = accept(user)
    with pytest.raises(LimitExceeded):
        accept(user, key="key-2")  # a new request is refused at the cap...

    again = accept(user)  # ...a retry of the first is answered

    assert again.replayed and again.generation.pk == first.generation.pk
    assert holds(user) == 1


@pytest.mark.django_db
def test_a_replay_of_a_quoted_create_answers_the_first_generation(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    first = accept(user, quote_id=str(issued.record.pk))

    again = accept(user, quote_id=str(issued.record.pk))  # the quote is used now

    assert again.replayed and again.generation.pk == first.generation.pk
    assert holds(user) == 1


@pytest.mark.django_db
def test_a_replay_after_a_price_rise_above_its_ceiling_answers_the_first_generation(user):
    first = accept(user, max_cost_credits=PRICE)
    PricingRule.objects.filter(resolution=Resolution.P1080, generate_audio=True).update(
        credits_per_second=50
    )

    again = accept(user, max_cost_credits=PRICE)

    assert again.replayed and again.generation.pk == first.generation.pk
    assert again.generation.cost_credits == PRICE
    assert holds(user) == 1


@pytest.mark.django_db
def test_a_replay_after_its_words_were_blocked_answers_the_first_generation(user):
    first = accept(user)
    BlockedTerm.objects.create(term="paper boat")

    again = accept(user)

    assert again.replayed and again.generation.pk == first.generation.pk


@pytest.mark.django_db
def test_a_replay_when_the_credits_ran_out_answers_the_first_generation():
    owner = UserFactory(credits=PRICE)
    first = accept(owner)

    again = accept(owner)

    assert again.replayed and again.generation.pk == first.generation.pk
    assert numbers(owner) == (PRICE, PRICE)
    with pytest.raises(InsufficientCredits):
        accept(owner, key="key-2")  # a new request with the same body is refused


@pytest.mark.django_db
def test_a_refused_request_with_a_new_key_is_still_refused(user, settings):
    settings.MAX_IN_FLIGHT_PER_USER = 1
    accept(user, key=None)

    with pytest.raises(LimitExceeded):
        accept(user, key="never-used")
    assert Generation.objects.filter(owner=user).count() == 1


@pytest.mark.django_db
def test_a_replay_of_an_upload_stores_no_second_image(user, settings):
    body = {k: v for k, v in REQUEST_BODY.items() if k != "image_url"}
    first = services.accept(
        user=user, params=body, image_file=image_upload(), idempotency_key="upload"
    )
    again = services.accept(
        user=user, params=body, image_file=image_upload(), idempotency_key="upload"
    )

    assert again.replayed and again.generation.pk == first.generation.pk
    stored = [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()]
    assert len(stored) == 1


# --- The same key at once, on a database threads share (PostgreSQL under `pg`) -----------


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cap", [0, 5], ids=["no-cap", "cap"])
@pytest.mark.parametrize("quoted", [False, True], ids=["price-now", "quote"])
def test_one_key_sent_at_once_makes_one_generation_and_one_hold(settings, cap, quoted):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.fail("needs a database that threads share (a SQLite file or PostgreSQL)")
    settings.MAX_IN_FLIGHT_PER_USER = cap
    owner = UserFactory(credits=1000)
    extra = {}
    if quoted:
        extra["quote_id"] = str(quotes.issue(user=owner, params=REQUEST_BODY).record.pk)

    results = race(8, lambda i: accept(owner, key="same-key", **extra))

    errors = [value for kind, value in results if kind != "ok"]
    assert not errors, errors[:3]
    accepted = [value for _, value in results]
    assert Counter(result.replayed for result in accepted) == {False: 1, True: 7}
    assert len({result.generation.pk for result in accepted}) == 1
    assert Generation.objects.filter(owner=owner).count() == 1
    assert holds(owner) == 1
    assert numbers(owner) == (1000, PRICE)
