from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.utils import timezone

from accounts import ledger
from accounts.groups import MODERATORS
from generations.models import Generation
from tests.factories import GenerationFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle history lives in the cache: every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def moderator(db):
    user = UserFactory(username="moderator", is_staff=True)
    user.groups.add(Group.objects.get(name=MODERATORS))
    return user


@pytest.fixture
def superuser(staff_user):
    return staff_user


@pytest.fixture
def admin_client_for(client):
    """`admin_client_for(user)`: the test client logged in as `user`."""

    def login(user):
        client.force_login(user)
        return client

    return login


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
