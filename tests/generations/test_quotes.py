"""Quotes that bind (generations.quotes) and the price as line items (generations.pricing),
through the real services and database."""

from __future__ import annotations

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from accounts import ledger
from generations import pricing, quotes, services
from generations.models import Generation, PricingRule, Quote
from generations.schedules import SCHEDULES
from generations.tasks import TASKS
from tests.credits import kinds, numbers
from tests.factories import REQUEST_BODY, UserFactory
from tests.races import race
from veoproject.exceptions import InsufficientCredits, ValidationFailed

pytestmark = pytest.mark.django_db

OPTIONS = {key: REQUEST_BODY[key] for key in ("duration", "resolution", "generate_audio")}
FAST = "fal-ai/veo3.1/fast/image-to-video"


def reprice(resolution="1080p", audio=True, rate=55) -> None:
    """Staff change a price (as the admin does: the active rule's rate)."""
    PricingRule.objects.filter(
        endpoint=pricing.settings.FAL_ENDPOINT,
        resolution=resolution,
        generate_audio=audio,
        active=True,
    ).update(credits_per_second=rate)


def create(user, **extra):
    return services.accept(user=user, params={**REQUEST_BODY, **extra})


# --- Line items --------------------------------------------------------------------------


def test_line_items_split_the_rate_into_model_resolution_and_audio():
    rates = {("720p", False): 20, ("720p", True): 40, ("4k", False): 40, ("4k", True): 60}
    price = pricing.quote(duration="8s", resolution="4k", generate_audio=True, rates=rates)
    assert price.credits == 480
    assert price.price_breakdown == [
        {
            "item": "model",
            "value": pricing.settings.FAL_ENDPOINT,
            "seconds": 8,
            "credits_per_second": 20,
            "credits": 160,
        },
        {
            "item": "resolution",
            "value": "4k",
            "seconds": 8,
            "credits_per_second": 20,
            "credits": 160,
        },
        {"item": "audio", "value": True, "seconds": 8, "credits_per_second": 20, "credits": 160},
    ]


@pytest.mark.parametrize(
    "rates",
    [
        # seeded, an audio-only model, audio priced below silence, one rule only
        {("720p", False): 20, ("720p", True): 40, ("1080p", False): 20, ("1080p", True): 40},
        {("720p", True): 40, ("1080p", True): 50},
        {("720p", False): 30, ("720p", True): 25, ("1080p", False): 35, ("1080p", True): 45},
        {("1080p", True): 7},
    ],
)
def test_line_items_always_add_up_to_the_price(rates):
    for resolution, audio in rates:
        for duration in ("4s", "6s", "8s"):
            price = pricing.quote(
                duration=duration, resolution=resolution, generate_audio=audio, rates=rates
            )
            lines = price.price_breakdown
            assert [line["item"] for line in lines] == ["model", "resolution", "audio"]
            assert sum(line["credits"] for line in lines) == price.credits
            assert all(
                line["credits"] == line["seconds"] * line["credits_per_second"] for line in lines
            )


def test_accept_stores_the_line_items_on_the_generation(user):
    generation = create(user).generation
    generation.refresh_from_db()
    assert generation.quote_id is None  # no quote: the price then
    assert sum(line["credits"] for line in generation.price_breakdown) == 320
    assert [line["item"] for line in generation.price_breakdown] == ["model", "resolution", "audio"]


# --- Issuing -----------------------------------------------------------------------------


def test_a_quote_is_stored_with_its_user_model_options_price_and_expiry(user, settings):
    settings.QUOTE_TTL_SECONDS = 90
    before = timezone.now()
    issued = quotes.issue(user=user, params={**REQUEST_BODY, "prompt": "ignored"})
    record = Quote.objects.get(pk=issued.record.pk)
    assert record.owner == user
    assert record.model == "fal-ai/veo3.1/image-to-video"
    assert record.options == OPTIONS
    assert record.cost_credits == issued.price.credits == 320
    assert record.price_breakdown == issued.price.price_breakdown
    assert before + timedelta(seconds=90) <= record.expires_at
    assert record.expires_at <= timezone.now() + timedelta(seconds=90)
    assert record.used_at is None


def test_a_quote_of_options_with_no_price_is_refused_and_not_stored(user):
    with pytest.raises(ValidationFailed):
        quotes.issue(user=user, params={**OPTIONS, "resolution": "4k"})
    assert not Quote.objects.exists()


# --- Binding -----------------------------------------------------------------------------


def test_a_quoted_create_pays_the_quoted_price_after_staff_raised_it(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    reprice(rate=55)
    assert quotes.issue(user=user, params=REQUEST_BODY).price.credits == 440  # the price now

    generation = create(user, quote_id=str(issued.record.pk)).generation

    generation.refresh_from_db()
    assert generation.cost_credits == 320
    assert generation.price_breakdown == issued.record.price_breakdown
    assert generation.quote_id == issued.record.pk  # the quote it paid, linked
    assert numbers(user) == (1000, 320)  # the hold took the quoted price
    assert Quote.objects.get(pk=issued.record.pk).used_at is not None


def test_a_quoted_create_pays_the_quoted_price_after_staff_lowered_it(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    reprice(rate=10)
    generation = create(user, quote_id=str(issued.record.pk)).generation
    assert generation.cost_credits == 320


def test_an_expired_quote_is_refused_with_the_price_now_and_nothing_is_held(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    Quote.objects.filter(pk=issued.record.pk).update(expires_at=timezone.now())
    reprice(rate=50)

    with pytest.raises(quotes.QuoteExpired) as refused:
        create(user, quote_id=str(issued.record.pk))

    assert refused.value.code == "quote_expired"
    assert refused.value.http_status == 409
    assert refused.value.extra["cost_credits"] == 400
    assert "400 credits" in refused.value.message
    assert not Generation.objects.exists()
    assert numbers(user) == (1000, 0)


def test_a_quote_still_binds_just_before_it_expires(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    Quote.objects.filter(pk=issued.record.pk).update(
        expires_at=timezone.now() + timedelta(seconds=5)
    )
    assert create(user, quote_id=str(issued.record.pk)).generation.cost_credits == 320


def test_a_quotes_state_and_the_quotes_in_a_state_follow_one_rule(user):
    """`Quote.state_at` (the claim, the admin's column) and `in_state` (the admin's filter,
    the purge) agree at every moment, the instant of expiry included (expired from then)."""
    now = timezone.now()
    made = [quotes.issue(user=user, params=REQUEST_BODY).record for _ in range(4)]
    Quote.objects.filter(pk=made[0].pk).update(expires_at=now - timedelta(seconds=1))
    Quote.objects.filter(pk=made[1].pk).update(expires_at=now)
    Quote.objects.filter(pk=made[2].pk).update(used_at=now, expires_at=now - timedelta(hours=1))
    for moment in (now - timedelta(seconds=2), now, now + timedelta(days=1)):
        by_state = {
            state: set(Quote.objects.in_state(state, moment).values_list("pk", flat=True))
            for state in Quote.State
        }
        for quote in Quote.objects.all():
            assert quote.pk in by_state[quote.state_at(moment)]
        assert sum(map(len, by_state.values())) == 4  # each quote in exactly one state
    assert Quote.objects.get(pk=made[1].pk).state_at(now) == Quote.State.EXPIRED
    assert Quote.objects.get(pk=made[2].pk).state_at(now) == Quote.State.USED
    assert Quote.objects.get(pk=made[3].pk).state_at(now) == Quote.State.OPEN


def test_a_quote_at_its_expiry_instant_is_refused(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    frozen = timezone.now()
    Quote.objects.filter(pk=issued.record.pk).update(expires_at=frozen)
    with (
        mock.patch("generations.quotes.timezone.now", return_value=frozen),
        pytest.raises(quotes.QuoteExpired),
    ):
        create(user, quote_id=str(issued.record.pk))
    assert Quote.objects.get(pk=issued.record.pk).used_at is None


@pytest.mark.parametrize(
    "change",
    [{"duration": "4s"}, {"resolution": "720p"}, {"generate_audio": False}],
)
def test_a_quote_of_other_options_is_a_mismatch(user, change):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    with pytest.raises(quotes.QuoteMismatch) as refused:
        create(user, quote_id=str(issued.record.pk), **change)
    current = pricing.quote(
        duration=change.get("duration", "8s"),
        resolution=change.get("resolution", "1080p"),
        generate_audio=change.get("generate_audio", True),
    )
    assert refused.value.extra["cost_credits"] == current.credits
    assert not Generation.objects.exists()
    assert Quote.objects.get(pk=issued.record.pk).used_at is None


def test_a_quote_may_differ_in_what_sets_no_price(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    generation = create(
        user, quote_id=str(issued.record.pk), aspect_ratio="9:16", prompt="Something else"
    ).generation
    assert generation.cost_credits == 320


def test_a_quote_of_another_model_is_a_mismatch(user):
    pricing.ensure_default_rules(FAST)
    issued = quotes.issue(user=user, params={**REQUEST_BODY, "model": FAST})
    assert issued.record.model == FAST
    with pytest.raises(quotes.QuoteMismatch):
        create(user, quote_id=str(issued.record.pk))
    assert not Generation.objects.exists()


def test_another_users_quote_answers_exactly_like_an_unknown_one(user, other_user):
    theirs = quotes.issue(user=other_user, params=REQUEST_BODY)
    with pytest.raises(quotes.QuoteMismatch) as stolen:
        create(user, quote_id=str(theirs.record.pk))
    with pytest.raises(quotes.QuoteMismatch) as unknown:
        create(user, quote_id=str(uuid.uuid4()))
    assert (stolen.value.code, stolen.value.message, stolen.value.extra) == (
        unknown.value.code,
        unknown.value.message,
        unknown.value.extra,
    )
    assert Quote.objects.get(pk=theirs.record.pk).used_at is None
    assert numbers(user) == (1000, 0)


def test_a_quote_pays_for_one_generation_only(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    create(user, quote_id=str(issued.record.pk))
    with pytest.raises(quotes.QuoteExpired) as again:
        create(user, quote_id=str(issued.record.pk))
    assert "already paid" in again.value.message
    assert Generation.objects.count() == 1
    assert numbers(user) == (1000, 320)


def test_a_create_refused_for_credits_does_not_spend_the_quote(db):
    poor = UserFactory(credits=100)
    issued = quotes.issue(user=poor, params=REQUEST_BODY)
    with pytest.raises(InsufficientCredits):
        create(poor, quote_id=str(issued.record.pk))
    assert Quote.objects.get(pk=issued.record.pk).used_at is None

    ledger.grant(user=poor, amount=300, reason="top-up")
    reprice(rate=50)
    assert create(poor, quote_id=str(issued.record.pk)).generation.cost_credits == 320


def test_an_idempotent_replay_answers_the_first_generation_without_touching_the_quote(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    first = services.accept(
        user=user, params={**REQUEST_BODY, "quote_id": str(issued.record.pk)}, idempotency_key="k1"
    )
    reprice(rate=70)
    again = services.accept(
        user=user, params={**REQUEST_BODY, "quote_id": str(issued.record.pk)}, idempotency_key="k1"
    )
    assert again.replayed is True
    assert again.generation.pk == first.generation.pk
    assert again.generation.cost_credits == 320
    assert kinds(first.generation) == ["hold"]
    assert numbers(user) == (1000, 320)


# --- A ceiling without a quote ------------------------------------------------------------


def test_max_cost_refuses_a_price_that_rose_above_it(user):
    reprice(rate=50)
    with pytest.raises(quotes.PriceChanged) as refused:
        create(user, max_cost_credits=320)
    assert refused.value.code == "price_changed"
    assert refused.value.extra["cost_credits"] == 400
    assert "400 credits" in refused.value.message
    assert not Generation.objects.exists()
    assert numbers(user) == (1000, 0)


def test_max_cost_at_or_above_the_price_creates_at_the_price_now(user):
    assert create(user, max_cost_credits=320).generation.cost_credits == 320
    reprice(rate=30)
    assert create(user, max_cost_credits=1000).generation.cost_credits == 240


def test_quote_and_max_cost_together_are_a_validation_error(user):
    issued = quotes.issue(user=user, params=REQUEST_BODY)
    with pytest.raises(ValidationFailed) as refused:
        create(user, quote_id=str(issued.record.pk), max_cost_credits=500)
    assert "max_cost_credits" in refused.value.fields
    assert Quote.objects.get(pk=issued.record.pk).used_at is None


@pytest.mark.parametrize("bad", [{"quote_id": "not-a-uuid"}, {"max_cost_credits": 0}])
def test_malformed_price_fields_are_validation_errors(user, bad):
    with pytest.raises(ValidationFailed) as refused:
        create(user, **bad)
    assert set(refused.value.fields) == set(bad)


# --- Purging -----------------------------------------------------------------------------


def test_purge_deletes_only_unused_quotes_long_expired(user):
    now = timezone.now()
    fresh, recent, old, used = (
        quotes.issue(user=user, params=REQUEST_BODY).record for _ in range(4)
    )
    paid = create(user, quote_id=str(used.pk)).generation
    Quote.objects.filter(pk=recent.pk).update(expires_at=now - timedelta(minutes=5))
    long_ago = now - quotes.PURGE_AFTER - timedelta(1)
    Quote.objects.filter(pk__in=[old.pk, used.pk]).update(expires_at=long_ago)

    assert quotes.purge_expired() == 1

    # The used one is what its generation was promised: kept, and still linked.
    assert set(Quote.objects.values_list("pk", flat=True)) == {fresh.pk, recent.pk, used.pk}
    assert Generation.objects.get(pk=paid.pk).quote_id == used.pk


def test_purging_is_scheduled():
    assert SCHEDULES["generations.purge_quotes"]["func"] == TASKS["purge_quotes"]


# --- One quote, many creates at once ------------------------------------------------------


@pytest.mark.pg
@pytest.mark.django_db(transaction=True)
def test_one_quote_raced_by_eight_creates_pays_for_exactly_one(settings):
    from django.db import connection

    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.fail("This race needs a database that threads share (a SQLite file or PostgreSQL).")
    settings.MAX_IN_FLIGHT_PER_USER = 0
    racer = UserFactory(credits=5000)
    issued = quotes.issue(user=racer, params=REQUEST_BODY)
    reprice(rate=60)

    results = race(8, lambda i: create(racer, quote_id=str(issued.record.pk)).generation.pk)

    won = [value for kind, value in results if kind == "ok"]
    lost = [value for kind, value in results if kind == "error"]
    assert len(won) == 1, lost[:3]
    assert all(isinstance(exc, quotes.QuoteExpired) for exc in lost), lost[:3]
    assert Generation.objects.get().cost_credits == 320
    assert numbers(racer)[1] == 320
    assert ledger.broken_accounts() == []
