"""LOG_FORMAT=json: one JSON object per line, carrying the key=value fields of our event
lines; the default stays the text line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid

import pytest

from tests.processes import run_python
from veoproject.logging import JsonFormatter, parse_pairs


def record(message: str, *args, level=logging.WARNING, **kwargs) -> logging.LogRecord:
    logger = logging.getLogger("generations.webhook_views")
    return logger.makeRecord(
        logger.name, level, __file__, 1, message, args, kwargs.pop("exc_info", None), **kwargs
    )


def test_an_event_line_becomes_one_json_object_with_its_fields():
    generation = uuid.uuid4()
    line = JsonFormatter().format(
        record(
            "event=fal_webhook_rejected generation=%s reason=%r attempt=%s error=%s",
            generation,
            "the signature doesn't verify",
            3,
            None,
        )
    )
    assert "\n" not in line
    fields = json.loads(line)
    assert fields["event"] == "fal_webhook_rejected"
    assert fields["generation"] == str(generation)
    assert fields["reason"] == "the signature doesn't verify"
    assert fields["attempt"] == 3
    assert fields["error"] is None
    assert fields["level"] == "WARNING"
    assert fields["logger"] == "generations.webhook_views"
    assert fields["msg"].startswith("event=fal_webhook_rejected generation=")
    assert fields["time"].endswith("+00:00")


def test_quoted_values_keep_spaces_quotes_and_equals_signs():
    raw = "fal said \"no\" and 'why' = 42"
    pairs = parse_pairs(
        f"event=callback_attempt raw={raw!r} url=https://x.example/?a=b message={'two words'!r}"
    )
    assert pairs == {
        "event": "callback_attempt",
        "raw": "fal said \"no\" and 'why' = 42",
        "url": "https://x.example/?a=b",
        "message": "two words",
    }


def test_a_field_named_like_a_fixed_one_never_overwrites_it():
    fields = json.loads(JsonFormatter().format(record("event=x level=fake logger=fake msg=fake")))
    assert (fields["level"], fields["logger"]) == ("WARNING", "generations.webhook_views")
    assert fields["msg"] == "event=x level=fake logger=fake msg=fake"


def test_lines_without_pairs_extra_fields_and_exceptions():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    fields = json.loads(
        JsonFormatter().format(
            record("Internal Server Error: /x", exc_info=exc_info, extra={"status_code": 500})
        )
    )
    assert fields["msg"] == "Internal Server Error: /x"
    assert "event" not in fields
    assert fields["status_code"] == 500
    assert "RuntimeError: boom" in fields["exception"]


LOG_ONE_EVENT = (
    "import django, logging; django.setup(); "
    "logging.getLogger('generations.services').warning("
    "'event=generation_failed generation=%s code=%s', 'g-1', 'timeout')"
)


def run_with(**env: str) -> subprocess.CompletedProcess[str]:
    return run_python(LOG_ONE_EVENT, drop=["LOG_FORMAT", "SENTRY_DSN"], timeout=60, **env)


def test_log_format_json_writes_json_lines_through_the_settings():
    result = run_with(LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    event = next(line for line in lines if line.get("event") == "generation_failed")
    assert event["generation"] == "g-1"
    assert event["code"] == "timeout"
    assert event["logger"] == "generations.services"


def test_the_default_stays_the_text_line():
    result = run_with()
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if "event=generation_failed" in line)
    assert (
        "level=WARNING logger=generations.services event=generation_failed generation=g-1" in line
    )
    with pytest.raises(ValueError):
        json.loads(line)


def test_an_unknown_log_format_is_refused():
    result = run_with(LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT is text" in result.stderr
