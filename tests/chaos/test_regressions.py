"""Bugs the chaos suite found, pinned down as fast unit tests (normal suite, not chaos)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx
from django.utils import timezone

from accounts.models import CreditAccount, LedgerEntry
from generations import services
from generations.models import Generation
from generations.simulated import SIMULATED_VIDEO_URL
from tests.factories import REQUEST_BODY

pytestmark = pytest.mark.django_db


def test_a_video_copy_retried_after_the_deadline_still_finishes(user, settings):
    """fal finished in time, the first copy of the video failed, and the deadline passed
    before its retry was due: the sweep must still dispatch the copy (it used to skip the
    generation forever, credits held)."""
    settings.FAL_KEY = ""  # the simulated backend serves the video
    generation = services.accept(user=user, params=REQUEST_BODY).generation
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


# --- Submit POSTs are counted on the failure paths too ----------------------------------

QUEUE = "https://queue.fal.run"
SUBMIT_URL = f"{QUEUE}/fal-ai/veo3.1/image-to-video"


@pytest.fixture
def real_gateway(settings, monkeypatch):
    settings.FAL_KEY = "key:secret"
    settings.FAL_SIMULATED = False
    settings.FAL_HTTP_TIMEOUT = 2.0
    monkeypatch.setattr("fal_client.client.time.sleep", lambda seconds: None)


def dropped(request):
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


def submitted(request):
    urls = f"{QUEUE}/fal-ai/veo3.1/requests/req-2"
    body = {
        "request_id": "req-2",
        "response_url": urls,
        "status_url": f"{urls}/status",
        "cancel_url": f"{urls}/cancel",
        "queue_position": 0,
    }
    return httpx.Response(200, json=body)


@respx.mock
def test_a_dropped_post_before_a_5xx_is_counted_as_a_possible_duplicate(user, real_gateway):
    """fal created a job, the connection dropped, fal_client posted again and got a 500:
    the retry later makes a second job. The chaos suite saw such duplicates that
    `fal_submit_count` did not show; both POSTs that may have made a job now count."""
    refused = httpx.Response(500, json={"detail": "boom"}, headers={"x-fal-request-id": "x"})
    respx.post(SUBMIT_URL).mock(side_effect=[dropped, lambda request: refused, submitted])
    generation = services.accept(user=user, params=REQUEST_BODY).generation

    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert (generation.status, generation.fal_submit_count) == ("pending", 1)

    Generation.objects.filter(pk=generation.pk).update(next_poll_at=None)
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert (generation.status, generation.fal_request_id) == ("queued", "req-2")
    assert generation.fal_submit_count == 2  # the dropped POST and the accepted one


@respx.mock
def test_an_unknown_outcome_counts_every_post_the_client_sent(user, real_gateway):
    def timed_out(request):
        raise httpx.ReadTimeout("read timed out")

    respx.post(SUBMIT_URL).mock(side_effect=[dropped, timed_out])
    generation = services.accept(user=user, params=REQUEST_BODY).generation

    services.submit(generation_id=generation.pk)

    generation.refresh_from_db()
    assert generation.status == "submitting"  # outcome unknown: reconciled later
    assert generation.fal_submit_count == 2
