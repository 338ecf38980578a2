from __future__ import annotations

import pytest
from django.utils import timezone

from accounts import ledger
from generations.models import Generation
from tests.factories import GenerationFactory


@pytest.fixture
def paid_generation(user):
    """A succeeded 320-credit generation of `user`, held and captured through the ledger."""
    generation = GenerationFactory(owner=user, cost_credits=320)
    ledger.hold(generation=generation)
    ledger.capture(generation=generation)
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.SUCCEEDED, completed_at=timezone.now()
    )
    generation.refresh_from_db()
    return generation


@pytest.fixture
def held_generation(user):
    """A queued 320-credit generation of `user` with its hold placed."""
    generation = GenerationFactory(
        owner=user, cost_credits=320, status=Generation.Status.QUEUED, fal_request_id="req-1"
    )
    ledger.hold(generation=generation)
    return generation
