"""A stand-in for fal when FAL_KEY is unset, so the project runs offline (`make run`).

A `generations.fal.FalBackend`, like `generations.fal.FalGateway`. It keeps no state,
because web and worker processes must agree: the request id carries the submit time and
the outcome, and the status follows the clock (queued, then running, then done). The video
is the sample shipped in `generations/assets/sample.mp4`.

Prompt markers choose an outcome, like the test fake: `[fal:content_policy]`,
`[fal:runner_error]`, `[fal:timeout]`, `[fal:never]`.

It knows every catalogued endpoint and checks a submit's arguments as fal does
(`catalogue.fal_input_errors`): fal takes any JSON at submit and refuses bad input only at
the result (422), so a job with bad input runs and then fails with `invalid_input`.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings

from generations import catalogue
from generations.fal import FalJobFailed, JobResult, JobStatus, Submitted
from veoproject import metrics

SAMPLE_VIDEO = Path(__file__).resolve().parent / "assets" / "sample.mp4"
SIMULATED_VIDEO_URL = "simulated:sample.mp4"
SIMULATED_UPLOAD_PREFIX = "simulated:uploads/"
_MARKER = re.compile(r"\[fal:(content_policy|runner_error|timeout|never)\]")
_REQUEST_ID = re.compile(
    r"^sim-(ok|invalid|content_policy|runner_error|timeout|never)-(\d+)-[0-9a-f]+$"
)


class SimulatedGateway:
    def __init__(self, *, endpoint: str) -> None:
        self.endpoint = endpoint
        self.queue_seconds = settings.FAL_SIMULATED_QUEUE_SECONDS
        self.run_seconds = settings.FAL_SIMULATED_RUN_SECONDS

    @metrics.fal_call("submit", backend="simulated")
    def submit(
        self,
        *,
        arguments: dict[str, Any],
        webhook_url: str | None = None,
        endpoint: str | None = None,
    ) -> Submitted:
        errors = catalogue.fal_input_errors(endpoint or self.endpoint, arguments)
        marker = _MARKER.search(str(arguments.get("prompt", "")))
        outcome = "invalid" if errors else marker.group(1) if marker else "ok"
        request_id = f"sim-{outcome}-{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}"
        return Submitted(request_id=request_id)

    def _parse(self, request_id: str) -> tuple[str, float]:
        match = _REQUEST_ID.match(request_id)
        if not match:
            raise FalJobFailed("Unknown simulated request.", code="upstream_error")
        return match.group(1), time.time() - int(match.group(2)) / 1000

    @metrics.fal_call("status", backend="simulated")
    def status(self, *, request_id: str) -> JobStatus:
        outcome, elapsed = self._parse(request_id)
        if elapsed < self.queue_seconds:
            return JobStatus(state="queued", queue_position=0)
        if elapsed < self.queue_seconds + self.run_seconds or outcome == "never":
            return JobStatus(state="running", logs=["Simulated render in progress"])
        if outcome == "runner_error":
            return JobStatus(
                state="completed", error="Runner disconnected", error_type="runner_disconnected"
            )
        if outcome == "timeout":
            return JobStatus(
                state="completed", error="Request timed out", error_type="request_timeout"
            )
        return JobStatus(state="completed", logs=["Simulated render finished"])

    @metrics.fal_call("result", backend="simulated")
    def result(self, *, request_id: str) -> JobResult:
        outcome, _ = self._parse(request_id)
        if outcome == "invalid":
            raise FalJobFailed(
                "The input does not fit the model (simulated).", code="invalid_input"
            )
        if outcome == "content_policy":
            raise FalJobFailed(
                "The content was flagged by a content checker (simulated).",
                code="content_policy",
            )
        return JobResult(video_url=SIMULATED_VIDEO_URL, file_size=SAMPLE_VIDEO.stat().st_size)

    @metrics.fal_call("cancel", backend="simulated")
    def cancel(self, *, request_id: str) -> None:
        return None

    @metrics.fal_call("upload", backend="simulated")
    def upload_image(
        self, *, data: bytes, content_type: str, file_name: str, expires_in: int
    ) -> str:
        """A stable stand-in for fal's storage URL (same bytes, same URL): nothing is sent
        anywhere, and the simulated render never reads its input."""
        return f"{SIMULATED_UPLOAD_PREFIX}{hashlib.sha256(data).hexdigest()[:16]}/{file_name}"
