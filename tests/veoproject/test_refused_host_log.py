"""A request with a Host header outside ALLOWED_HOSTS: a 400, and one WARNING line in the
log, not an ERROR with a traceback (scanners send such requests all day; with Sentry on,
each ERROR would be reported)."""

from __future__ import annotations

import json
import logging

import pytest

from veoproject.logging import JsonFormatter

pytestmark = pytest.mark.django_db


def refused_records(caplog, client, host: str):
    with caplog.at_level(logging.INFO, logger="django.security.DisallowedHost"):
        response = client.get("/", HTTP_HOST=host)
    assert response.status_code == 400
    return [r for r in caplog.records if r.name == "django.security.DisallowedHost"]


def test_a_refused_host_is_one_warning_line_without_a_traceback(caplog, client):
    (record,) = refused_records(caplog, client, "evil.example")
    assert record.levelno == logging.WARNING and record.levelname == "WARNING"
    assert record.exc_info is None and record.exc_text is None
    line = record.getMessage()
    assert line.startswith("event=host_refused detail=") and "evil.example" in line
    assert "\n" not in line
    assert "exception" not in JsonFormatter().format(record)


def test_a_host_with_quotes_and_spaces_stays_one_parsable_pair(caplog, client):
    (record,) = refused_records(caplog, client, "a'b\"c.example")
    fields = json.loads(JsonFormatter().format(record))
    assert fields["level"] == "WARNING" and fields["event"] == "host_refused"
    assert (
        fields["detail"].startswith("Invalid HTTP_HOST header: ")
        and "c.example" in fields["detail"]
    )


def test_configured_twice_the_line_is_rewritten_once(client, settings):
    """dictConfig run again in one process (a reload, a test) adds the filter again."""
    from logging.config import dictConfig

    dictConfig(settings.LOGGING)
    dictConfig(settings.LOGGING)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger = logging.getLogger("django.security.DisallowedHost")
    logger.addHandler(handler)
    try:
        assert client.get("/", HTTP_HOST="evil.example").status_code == 400
    finally:
        logger.removeHandler(handler)
    (record,) = seen
    assert record.getMessage().count("event=host_refused") == 1
