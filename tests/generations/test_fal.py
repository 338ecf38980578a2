"""The fal gateway against fal's HTTP API, mocked at the edge with respx."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from generations.fal import (
    FalGateway,
    FalJobFailed,
    FalOutcomeUnknown,
    FalRejected,
    FalRetryable,
)

QUEUE = "https://queue.fal.run"
ENDPOINT = "fal-ai/veo3.1/image-to-video"
REQUESTS = f"{QUEUE}/fal-ai/veo3.1/requests"
ARGUMENTS = {
    "prompt": "A lighthouse in a storm, waves crashing",
    "image_url": "https://images.example.com/lighthouse.jpg",
    "aspect_ratio": "9:16",
    "duration": "6s",
    "resolution": "1080p",
    "generate_audio": False,
}


@pytest.fixture
def gateway(settings):
    settings.FAL_HTTP_TIMEOUT = 2.0
    return FalGateway(key="key-id:key-secret", endpoint=ENDPOINT, timeout=2.0)


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch):
    # fal-client sleeps between its own retries; the clock is an edge we may stub.
    monkeypatch.setattr("fal_client.client.time.sleep", lambda seconds: None)


def submitted(request_id="req-1"):
    return {
        "request_id": request_id,
        "response_url": f"{REQUESTS}/{request_id}",
        "status_url": f"{REQUESTS}/{request_id}/status",
        "cancel_url": f"{REQUESTS}/{request_id}/cancel",
        "status": "IN_QUEUE",
        "queue_position": 0,
    }


@respx.mock
def test_submit_posts_the_exact_request(gateway, settings):
    settings.GENERATION_DEADLINE_SECONDS = 1800
    route = respx.post(f"{QUEUE}/{ENDPOINT}").mock(
        return_value=httpx.Response(200, json=submitted())
    )
    result = gateway.submit(
        arguments=ARGUMENTS, webhook_url="https://veo.example.com/webhooks/fal/?generation=abc"
    )
    assert result.request_id == "req-1"
    assert result.attempts == 1
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Key key-id:key-secret"
    assert json.loads(request.content) == ARGUMENTS
    assert json.loads(request.content)["duration"] == "6s"
    assert (
        request.url.params["fal_webhook"] == "https://veo.example.com/webhooks/fal/?generation=abc"
    )
    # A server-side start timeout: fal-client then never retries a timed-out submit.
    assert float(request.headers["X-Fal-Request-Timeout"]) == 1800
    assert str(request.url).startswith("https://queue.fal.run/fal-ai/veo3.1/image-to-video?")


@respx.mock
def test_submit_retried_after_429_counts_every_post(gateway):
    route = respx.post(f"{QUEUE}/{ENDPOINT}").mock(
        side_effect=[
            httpx.Response(429, json={"detail": "rate limited"}),
            httpx.Response(200, json=submitted()),
        ]
    )
    result = gateway.submit(arguments=ARGUMENTS)
    assert route.call_count == 2
    assert result.attempts == 2


@respx.mock
def test_submit_500_is_retryable(gateway):
    respx.post(f"{QUEUE}/{ENDPOINT}").mock(
        return_value=httpx.Response(500, json={"detail": "boom"})
    )
    with pytest.raises(FalRetryable):
        gateway.submit(arguments=ARGUMENTS)


@respx.mock
def test_submit_422_is_rejected_with_fals_message(gateway):
    respx.post(f"{QUEUE}/{ENDPOINT}").mock(
        return_value=httpx.Response(
            422,
            json={"detail": [{"loc": ["body", "duration"], "msg": "bad duration", "type": "enum"}]},
        )
    )
    with pytest.raises(FalRejected) as info:
        gateway.submit(arguments=ARGUMENTS)
    assert info.value.code == "invalid_input"
    assert "bad duration" in info.value.message


@respx.mock
def test_submit_timeout_is_an_unknown_outcome_not_a_retry(gateway):
    route = respx.post(f"{QUEUE}/{ENDPOINT}").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(FalOutcomeUnknown):
        gateway.submit(arguments=ARGUMENTS)
    assert route.call_count == 1  # no second, possibly duplicate, job


@respx.mock
def test_status_maps_queue_progress_and_completion(gateway):
    route = respx.get(f"{REQUESTS}/req-1/status").mock(
        side_effect=[
            httpx.Response(202, json={**submitted(), "status": "IN_QUEUE", "queue_position": 3}),
            httpx.Response(202, json={"status": "IN_PROGRESS", "logs": [{"message": "step 1"}]}),
            httpx.Response(200, json={"status": "COMPLETED", "logs": None, "metrics": {}}),
            httpx.Response(
                200,
                json={
                    "status": "COMPLETED",
                    "logs": None,
                    "error": "Request timed out",
                    "error_type": "request_timeout",
                },
            ),
        ]
    )
    queued = gateway.status(request_id="req-1")
    assert (queued.state, queued.queue_position) == ("queued", 3)
    running = gateway.status(request_id="req-1")
    assert (running.state, running.logs) == ("running", ["step 1"])
    assert gateway.status(request_id="req-1").state == "completed"
    failed = gateway.status(request_id="req-1")
    assert (failed.error, failed.error_type) == ("Request timed out", "request_timeout")
    assert route.calls.last.request.headers["Authorization"] == "Key key-id:key-secret"


@respx.mock
def test_result_returns_the_video(gateway):
    respx.get(f"{REQUESTS}/req-1/status").mock(
        return_value=httpx.Response(200, json={"status": "COMPLETED", "logs": None})
    )
    respx.get(f"{REQUESTS}/req-1").mock(
        return_value=httpx.Response(200, json={"video": {"url": "https://v3.fal.media/v.mp4"}})
    )
    assert gateway.result(request_id="req-1").video_url == "https://v3.fal.media/v.mp4"


@respx.mock
def test_result_content_policy_is_a_coded_failure(gateway):
    respx.get(f"{REQUESTS}/req-1/status").mock(
        return_value=httpx.Response(200, json={"status": "COMPLETED", "logs": None})
    )
    respx.get(f"{REQUESTS}/req-1").mock(
        return_value=httpx.Response(
            422,
            json={
                "detail": [
                    {
                        "loc": ["body", "prompt"],
                        "msg": "The content was flagged by a content checker.",
                        "type": "content_policy_violation",
                    }
                ]
            },
        )
    )
    with pytest.raises(FalJobFailed) as info:
        gateway.result(request_id="req-1")
    assert info.value.code == "content_policy"
    assert "flagged" in info.value.message


@respx.mock
def test_cancel_puts_to_the_cancel_url_and_tolerates_already_completed(gateway):
    route = respx.put(f"{REQUESTS}/req-1/cancel").mock(
        side_effect=[
            httpx.Response(202, json={"status": "CANCELLATION_REQUESTED"}),
            httpx.Response(400, json={"status": "ALREADY_COMPLETED"}),
        ]
    )
    gateway.cancel(request_id="req-1")
    gateway.cancel(request_id="req-1")
    assert route.call_count == 2
