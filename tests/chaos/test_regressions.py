"""Bugs the chaos suite found, pinned down as fast unit tests (normal suite, not chaos)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import CreditAccount, LedgerEntry
from generations import services
from generations.models import Generation
from generations.simulated import SIMULATED_VIDEO_URL
from tests.generations.conftest import PARAMS

pytestmark = pytest.mark.django_db


def test_a_video_copy_retried_after_the_deadline_still_finishes(user, settings):
    """fal finished in time, the first copy of the video failed, and the deadline passed
    before its retry was due: the sweep must still dispatch the copy (it used to skip the
    generation forever, credits held)."""
    settings.FAL_KEY = ""  # the simulated backend serves the video
    generation = services.accept(user=user, params=PARAMS).generation
    past = timezone.now() - timedelta(seconds=5)
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.QUEUED,
        fal_request_id="sim-ok-1-abc",
        fal_video_url=SIMULATED_VIDEO_URL,
        finish_failures=1,
        lease_until=None,
        next_poll_at=past,
        deadline_at=past,
    )

    services.sweep()  # tasks run inline in the test settings

    generation.refresh_from_db()
    assert generation.status == Generation.Status.SUCCEEDED
    assert generation.video_bytes
    kinds = LedgerEntry.objects.filter(generation=generation).order_by("id")
    assert list(kinds.values_list("kind", flat=True)) == ["hold", "capture"]
    assert CreditAccount.objects.get(user=user).reserved == 0
