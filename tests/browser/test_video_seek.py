"""Video that plays everywhere (issue 14): in a real browser, the player on a finished
generation's page seeks to the middle of the video and plays from there, fetching the
bytes it needs with Range requests that the server answers 206."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.test import Client
from playwright.sync_api import Page, Response

from generations.models import Generation
from tests.browser.conftest import needs_chromium
from tests.factories import GenerationFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_chromium]

SAMPLE_VIDEO = Path(__file__).resolve().parents[2] / "generations" / "assets" / "sample.mp4"
# Between the header and the frames: the player must ask for bytes far from the start.
PADDING = 8 * 1024 * 1024
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes | bytearray, start: int, end: int):
    """(offset, header length, size, type) of the MP4 boxes between start and end."""
    position = start
    while position < end:
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, position + 8)
            header = 16
        elif size == 0:
            size = end - position
        yield position, header, size, kind
        position += size


def _shift_chunk_offsets(data: bytearray, start: int, end: int, delta: int) -> None:
    for position, header, size, kind in _boxes(data, start, end):
        if kind in _CONTAINERS:
            _shift_chunk_offsets(data, position + header, position + size, delta)
        elif kind in (b"stco", b"co64"):
            fmt = ">I" if kind == b"stco" else ">Q"
            (count,) = struct.unpack_from(">I", data, position + header + 4)
            for index in range(count):
                at = position + header + 8 + index * struct.calcsize(fmt)
                (offset,) = struct.unpack_from(fmt, data, at)
                struct.pack_into(fmt, data, at, offset + delta)


def padded_mp4(source: bytes, padding: int) -> bytes:
    """The same video with a `free` box of `padding` bytes before its frames (`mdat`):
    the sample chunk offsets move by as much, so it still plays, from further away."""
    boxes = {kind: (position, size) for position, _, size, kind in _boxes(source, 0, len(source))}
    moov, mdat = boxes[b"moov"], boxes[b"mdat"]
    assert moov[0] < mdat[0], "the sample keeps its index first (faststart)"
    head = bytearray(source[: mdat[0]])
    _shift_chunk_offsets(head, moov[0] + 8, moov[0] + moov[1], padding)
    free = struct.pack(">I4s", padding, b"free") + bytes(padding - 8)
    return bytes(head) + free + source[mdat[0] :]


@pytest.fixture
def finished_video(db) -> tuple[Generation, bytes]:
    user = UserFactory()
    generation = GenerationFactory(owner=user, status="succeeded")
    video = padded_mp4(SAMPLE_VIDEO.read_bytes(), PADDING)
    generation.video.save("v.mp4", ContentFile(video))
    return generation, video


def log_in(page: Page, live_server, user) -> None:
    """A session made by Django's test client, handed to the browser as its cookie."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": live_server.url}])


def test_player_seeks_to_the_middle_and_plays(page: Page, live_server, finished_video):
    generation, video = finished_video
    log_in(page, live_server, generation.owner)
    answers: list[tuple[str | None, int, str | None]] = []

    def record(response: Response) -> None:
        if response.url.endswith(f"/media/generations/{generation.pk}/video.mp4"):
            sent = response.request.all_headers()
            answers.append(
                (sent.get("range"), response.status, response.headers.get("content-range"))
            )

    page.on("response", record)
    page.goto(f"{live_server.url}/videos/{generation.pk}/")
    state = page.evaluate(
        """async () => {
            const video = document.querySelector('[data-testid=player]');
            video.muted = true;
            if (video.readyState < 1) {
                await new Promise(resolve => video.addEventListener(
                    'loadedmetadata', resolve, {once: true}));
            }
            const middle = video.duration / 2;
            const seeked = new Promise(resolve => video.addEventListener(
                'seeked', resolve, {once: true}));
            video.currentTime = middle;
            await seeked;
            await video.play();
            const deadline = Date.now() + 10000;
            while (video.currentTime < middle + 0.25 && !video.ended && Date.now() < deadline) {
                await new Promise(resolve => setTimeout(resolve, 50));
            }
            return {ready: video.readyState, duration: video.duration, middle: middle,
                    time: video.currentTime, error: video.error && video.error.code};
        }"""
    )

    assert state["error"] is None, state
    assert state["duration"] > 1, state
    assert state["ready"] >= 2, state
    assert state["time"] >= state["middle"] + 0.25, state  # it plays on from the middle
    ranged = [answer for answer in answers if answer[0] is not None]
    assert ranged, answers
    assert all(status == 206 for _, status, _ in ranged), answers
    assert any(
        content_range is not None and int(content_range.split()[1].split("-")[0]) >= PADDING
        for _, _, content_range in ranged
    ), answers  # the frames, fetched from beyond the padding, not read through it
    assert all(content_range.endswith(f"/{len(video)}") for _, _, content_range in ranged)
