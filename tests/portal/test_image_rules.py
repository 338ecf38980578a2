"""The image rules on the page are the server's (issue 14): the studio renders the one
definition (`generations.validation.image_rules`) for its script, and each message in it
is the very one the server gives for such a file. The browser side is
tests/browser/test_first_visit.py."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from generations.validation import check_image_file, image_rules

pytestmark = pytest.mark.django_db


def image_bytes(size=(1280, 720), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def server_says(data: bytes) -> str:
    with pytest.raises(ValidationError) as refused:
        check_image_file(SimpleUploadedFile("any.bin", data))
    return refused.value.messages[0]


def page_rules(client) -> dict:
    page = client.get(reverse("studio")).content.decode()
    script = re.search(r'<script id="image-rules" type="application/json">(.*?)</script>', page)
    assert script, "the studio renders the rules for its script"
    assert 'data-rules="image-rules"' in page
    return json.loads(script.group(1))


def test_the_studio_renders_the_servers_rules(client, user, settings):
    client.force_login(user)
    assert page_rules(client) == image_rules()
    settings.IMAGE_MAX_BYTES = 3 * 1024 * 1024  # one setting changes both sides
    rules = page_rules(client)
    assert rules["max_bytes"] == 3 * 1024 * 1024
    assert rules["messages"]["too_large"] == "The image is too large (at most 3 MB)."


def test_each_message_on_the_page_is_the_one_the_server_gives(settings):
    rules = image_rules()
    messages = rules["messages"]
    too_small = messages["too_small"].replace("{width}", "640").replace("{height}", "360")
    assert server_says(image_bytes((640, 360))) == too_small
    assert server_says(image_bytes(fmt="GIF")) == messages["wrong_format"]
    assert server_says(b"%PDF-1.4 " + bytes(64)) == messages["unreadable"]
    assert server_says(b"") == messages["empty"]
    settings.IMAGE_MAX_PIXELS = 1000 * 1000
    assert server_says(image_bytes((1280, 1280))) == image_rules()["messages"]["too_many_pixels"]
    settings.IMAGE_MAX_BYTES = 1024
    assert server_says(image_bytes()) == image_rules()["messages"]["too_large"]


def starts_like(data: bytes, parts: list[list]) -> bool:
    return all(data[offset:].startswith(bytes.fromhex(hex_)) for offset, hex_ in parts)


@pytest.mark.parametrize(("fmt", "accepted"), [("JPEG", 1), ("PNG", 1), ("WEBP", 1), ("GIF", 0)])
def test_the_signatures_on_the_page_are_the_accepted_formats(fmt, accepted):
    data = image_bytes(fmt=fmt)
    matches = [parts for parts in image_rules()["signatures"] if starts_like(data, parts)]
    assert len(matches) == accepted
    if accepted:
        check_image_file(SimpleUploadedFile("x", data))  # and the server takes it
