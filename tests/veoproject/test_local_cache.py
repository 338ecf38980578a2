"""The per-process cache of prices and blocked terms (veoproject/local_cache.py).

A change saved in this process applies at once; one saved by another process applies
within LOCAL_CACHE_SECONDS; 0 turns the cache off. The other process is a real one (a
`python -c` on the same test database); only the clock this process reads is moved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generations import moderation, pricing, services
from generations.models import BlockedTerm, PricingRule, Resolution
from tests.e2e.fixtures import database_url
from tests.factories import REQUEST_BODY
from veoproject import local_cache

# REQUEST_BODY: 8 s at 1080p with audio.
P1080_AUDIO = {"resolution": Resolution.P1080, "generate_audio": True}


class Clock:
    """The monotonic clock the local cache reads, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(local_cache, "monotonic", clock)
    return clock


def queries(action) -> int:
    with CaptureQueriesContext(connection) as captured:
        action()
    return len(captured.captured_queries)


def rule(endpoint: str | None = None) -> PricingRule:
    return PricingRule.objects.get(
        endpoint=endpoint or pricing.settings.FAL_ENDPOINT, **P1080_AUDIO
    )


def rate_now() -> int:
    return pricing.active_rates()[(Resolution.P1080, True)]


@pytest.mark.django_db
def test_zero_turns_it_off_every_call_reads_the_database(settings):
    settings.LOCAL_CACHE_SECONDS = 0

    assert queries(lambda: [pricing.active_rates() for _ in range(3)]) == 3
    assert queries(lambda: [moderation.find_blocked_term("a cat") for _ in range(3)]) == 3


@pytest.mark.django_db
def test_on_repeated_reads_within_the_ttl_come_from_memory(settings, clock):
    settings.LOCAL_CACHE_SECONDS = 5

    assert queries(lambda: [pricing.active_rates() for _ in range(3)]) == 1
    assert queries(lambda: [moderation.find_blocked_term("a cat") for _ in range(3)]) == 1
    clock.now += 5.1
    assert queries(pricing.active_rates) == 1  # expired: read again


@pytest.mark.django_db
def test_a_caller_changing_the_rates_it_got_does_not_change_the_cache(settings):
    settings.LOCAL_CACHE_SECONDS = 60
    rates = pricing.active_rates()
    rates[(Resolution.P1080, True)] = 1
    pricing.active_rates_by_endpoint([settings.FAL_ENDPOINT])[settings.FAL_ENDPOINT].clear()

    assert rate_now() == 40


@pytest.mark.django_db
def test_a_price_saved_in_this_process_applies_at_once(settings, user, clock):
    settings.LOCAL_CACHE_SECONDS = 60
    assert rate_now() == 40  # cached
    changed = rule()
    changed.credits_per_second = 50
    changed.save()

    assert rate_now() == 50
    accepted = services.accept(user=user, params=REQUEST_BODY).generation
    assert accepted.cost_credits == 8 * 50


@pytest.mark.django_db
def test_a_rule_switched_off_here_is_no_longer_offered_at_once(settings, clock):
    settings.LOCAL_CACHE_SECONDS = 60
    assert (Resolution.P1080, True) in pricing.active_rates()
    switched_off = rule()
    switched_off.active = False
    switched_off.save()

    assert (Resolution.P1080, True) not in pricing.active_rates()


@pytest.mark.django_db
def test_a_blocked_term_added_or_deleted_here_applies_at_once(settings, clock):
    settings.LOCAL_CACHE_SECONDS = 60
    assert moderation.find_blocked_term("a purple giraffe") is None  # cached: no terms
    term = BlockedTerm.objects.create(term="giraffe")

    assert moderation.find_blocked_term("a purple giraffe") == "giraffe"
    term.delete()
    assert moderation.find_blocked_term("a purple giraffe") is None


@pytest.mark.django_db
def test_turning_the_setting_on_starts_from_an_empty_cache(settings):
    settings.LOCAL_CACHE_SECONDS = 60
    assert rate_now() == 40
    settings.LOCAL_CACHE_SECONDS = 0
    PricingRule.objects.filter(pk=rule().pk).update(credits_per_second=45)  # no signal
    settings.LOCAL_CACHE_SECONDS = 60

    assert rate_now() == 45


SAVE_IN_ANOTHER_PROCESS = textwrap.dedent(
    """
    import django
    django.setup()
    from django.conf import settings
    from generations.models import BlockedTerm, PricingRule
    rule = PricingRule.objects.get(
        endpoint=settings.FAL_ENDPOINT, resolution="1080p", generate_audio=True
    )
    rule.credits_per_second = 70
    rule.save()
    BlockedTerm.objects.create(term="giraffe")
    """
)


@pytest.mark.django_db(transaction=True)
def test_a_change_saved_by_another_process_applies_here_within_the_ttl(settings, clock):
    settings.LOCAL_CACHE_SECONDS = 5
    assert rate_now() == 40
    assert moderation.find_blocked_term("a purple giraffe") is None

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "veoproject.settings_test",
        "DATABASE_URL": database_url(),
    }
    subprocess.run([sys.executable, "-c", SAVE_IN_ANOTHER_PROCESS], env=env, check=True)
    assert rule().credits_per_second == 70  # committed

    clock.now += 4.9
    assert rate_now() == 40  # this process has not seen it yet...
    assert moderation.find_blocked_term("a purple giraffe") is None
    clock.now += 0.2
    assert rate_now() == 70  # ...and does once its copy is LOCAL_CACHE_SECONDS old
    assert moderation.find_blocked_term("a purple giraffe") == "giraffe"
