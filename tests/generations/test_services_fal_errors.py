"""The services against fal's HTTP answers (respx at the edge): unknown submit outcomes,
rejections, and copying the finished video."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx
from django.utils import timezone

from accounts import ledger
from accounts.models import CreditAccount, LedgerEntry
from generations import services
from generations.models import Generation
from tests.factories import REQUEST_BODY

pytestmark = pytest.mark.django_db

QUEUE = "https://queue.fal.run"
SUBMIT_URL = f"{QUEUE}/fal-ai/veo3.1/image-to-video"
REQUESTS = f"{QUEUE}/fal-ai/veo3.1/requests"
VIDEO_URL = "https://v3.fal.media/files/out.mp4"


@pytest.fixture(autouse=True)
def real_gateway(settings, monkeypatch):
    settings.FAL_KEY = "key:secret"
    settings.FAL_SIMULATED = False
    settings.FAL_HTTP_TIMEOUT = 2.0
    monkeypatch.setattr("fal_client.client.time.sleep", lambda seconds: None)


def submitted(request_id: str) -> dict:
    return {
        "request_id": request_id,
        "response_url": f"{REQUESTS}/{request_id}",
        "status_url": f"{REQUESTS}/{request_id}/status",
        "cancel_url": f"{REQUESTS}/{request_id}/cancel",
        "queue_position": 0,
    }


def completed(mock, request_id: str, video_route_response) -> None:
    mock.get(f"{REQUESTS}/{request_id}/status").mock(
        return_value=httpx.Response(200, json={"status": "COMPLETED", "logs": None})
    )
    mock.get(f"{REQUESTS}/{request_id}").mock(
        return_value=httpx.Response(200, json={"video": {"url": VIDEO_URL}})
    )
    mock.get(VIDEO_URL).mock(side_effect=video_route_response)


def make_due() -> None:
    Generation.objects.in_flight().update(next_poll_at=None, lease_until=None)


def test_submit_without_answer_is_retried_later_and_counted(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    with respx.mock() as mock:
        route = mock.post(SUBMIT_URL).mock(
            side_effect=[httpx.ReadTimeout("no answer"), httpx.Response(200, json=submitted("r2"))]
        )
        services.submit(generation_id=generation.pk)
        generation.refresh_from_db()
        assert generation.status == "submitting"  # outcome unknown: not failed, not resent
        assert generation.fal_submit_count == 1
        assert route.call_count == 1

        Generation.objects.filter(pk=generation.pk).update(
            lease_until=timezone.now() - timedelta(seconds=1)
        )
        services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert (generation.status, generation.fal_request_id) == ("queued", "r2")
    assert generation.fal_submit_count == 2  # a duplicate job on fal is possible, and visible
    assert list(
        LedgerEntry.objects.filter(generation=generation)
        .order_by("id")
        .values_list("kind", flat=True)
    ) == ["hold"]


def test_submit_rejected_by_fal_fails_and_releases(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    with respx.mock() as mock:
        mock.post(SUBMIT_URL).mock(
            return_value=httpx.Response(400, json={"detail": "image_url is not reachable"})
        )
        services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "invalid_input")
    assert "not reachable" in generation.error_message
    assert CreditAccount.objects.get(user=user).reserved == 0


def test_submit_429_goes_back_to_pending_with_backoff(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    with respx.mock() as mock:
        mock.post(SUBMIT_URL).mock(return_value=httpx.Response(429, json={"detail": "slow down"}))
        services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.status == "pending"
    assert generation.next_poll_at > timezone.now()
    assert CreditAccount.objects.get(user=user).reserved == 320


def test_too_many_submit_attempts_fail_and_release(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    Generation.objects.filter(pk=generation.pk).update(attempts=services.MAX_SUBMIT_ATTEMPTS)
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "upstream_error")
    assert CreditAccount.objects.get(user=user).reserved == 0


def test_video_copy_failure_is_retried_without_charging_twice(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    with respx.mock() as mock:
        mock.post(SUBMIT_URL).mock(return_value=httpx.Response(200, json=submitted("r1")))
        services.submit(generation_id=generation.pk)
        completed(
            mock,
            "r1",
            [httpx.Response(503), httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42video")],
        )
        make_due()
        services.sweep()  # status completed -> result -> finish: the copy fails
        generation.refresh_from_db()
        assert generation.status in ("queued", "running")
        assert (generation.fal_video_url, generation.finish_failures) == (VIDEO_URL, 1)
        make_due()
        services.sweep()  # the copy is retried and succeeds
    generation.refresh_from_db()
    assert generation.status == "succeeded"
    assert generation.video.read().startswith(b"\x00\x00\x00\x18ftyp")
    assert list(
        LedgerEntry.objects.filter(generation=generation)
        .order_by("id")
        .values_list("kind", flat=True)
    ) == [
        "hold",
        "capture",
    ]
    assert ledger.broken_accounts() == []


def test_oversized_video_fails_with_storage_error(user, settings):
    settings.VIDEO_MAX_BYTES = 1000
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    with respx.mock() as mock:
        mock.post(SUBMIT_URL).mock(return_value=httpx.Response(200, json={**submitted("r1")}))
        services.submit(generation_id=generation.pk)
        completed(mock, "r1", [httpx.Response(200, content=b"x" * 5000)])
        make_due()
        services.sweep()
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "storage_error")
    assert not generation.video
    assert CreditAccount.objects.get(user=user).reserved == 0


def test_completed_with_infrastructure_error_is_a_coded_failure(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    with respx.mock() as mock:
        mock.post(SUBMIT_URL).mock(return_value=httpx.Response(200, json=submitted("r1")))
        services.submit(generation_id=generation.pk)
        mock.get(f"{REQUESTS}/r1/status").mock(
            return_value=httpx.Response(
                200,
                json={
                    "status": "COMPLETED",
                    "logs": None,
                    "error": "Request timed out",
                    "error_type": "request_timeout",
                },
            )
        )
        make_due()
        services.sweep()
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "timeout")
    # Users read a plain reason; fal's own words are kept for staff.
    assert generation.error_message == "The video service took too long to make this video."
    assert generation.fal_logs[-1] == "[timeout] Request timed out"


def test_queue_position_and_running_are_recorded(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    with respx.mock() as mock:
        mock.post(SUBMIT_URL).mock(return_value=httpx.Response(200, json=submitted("r1")))
        services.submit(generation_id=generation.pk)
        mock.get(f"{REQUESTS}/r1/status").mock(
            side_effect=[
                httpx.Response(
                    202, json={**submitted("r1"), "status": "IN_QUEUE", "queue_position": 4}
                ),
                httpx.Response(
                    202, json={"status": "IN_PROGRESS", "logs": [{"message": "frame 1"}]}
                ),
            ]
        )
        make_due()
        services.sweep()
        generation.refresh_from_db()
        assert (generation.status, generation.fal_queue_position) == ("queued", 4)
        make_due()
        services.sweep()
    generation.refresh_from_db()
    assert (generation.status, generation.fal_logs) == ("running", ["frame 1"])
    assert generation.started_at is not None
