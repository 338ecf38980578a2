"""Log lines as JSON (`LOG_FORMAT=json`) and error reports to Sentry (`SENTRY_DSN`).

Our code logs one event per line as key=value pairs: ``event=fal_webhook_rejected
generation=<id> reason='...'``. `JsonFormatter` writes the same line as one JSON object:
`time`, `level`, `logger`, `msg` (the line as the text format writes it), each key=value
pair as a field of its own (quoted values, written with ``%r``, unquoted; whole numbers as
numbers; ``None`` as null), anything passed with ``extra=``, and `exception` when there is
one. A pair named like one of the fixed fields is left in `msg` only.

Settings import this module: nothing here may read Django's settings at import time.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

# A key, "=", then a quoted value (Python's %r of a string) or a run of non-spaces.
PAIR = re.compile(r"""(?:^|\s)([A-Za-z_][\w.]*)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)""")
FIXED_FIELDS = frozenset({"time", "level", "logger", "msg", "exception", "stack"})
# What every LogRecord carries; anything else on a record came through `extra=`.
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": message,
        }
        for key, value in parse_pairs(message).items():
            fields.setdefault(key, value)
        for key, value in vars(record).items():
            if key not in RECORD_ATTRIBUTES and not key.startswith("_"):
                fields.setdefault(key, value)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return json.dumps(fields, default=str, ensure_ascii=False)


class RefusedHostFilter(logging.Filter):
    """For `django.security.DisallowedHost`: a request whose Host header is not in
    ALLOWED_HOSTS (scanners send them all day) is one WARNING line, where Django logs an
    ERROR with a traceback (and Sentry, when on, would report each as an error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_host_refused", False):
            return True  # rewritten already (logging configured twice in one process)
        record._host_refused = True
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = record.stack_info = None
        record.msg, record.args = "event=host_refused detail=%r", (record.getMessage(),)
        return True


def parse_pairs(message: str) -> dict[str, Any]:
    """The key=value pairs of a log line, in order; a key named twice keeps its first value.
    Keys named like a fixed field are skipped (they stay readable in `msg`)."""
    pairs: dict[str, Any] = {}
    for match in PAIR.finditer(message):
        key, raw = match.group(1), match.group(2)
        if key not in FIXED_FIELDS and key not in pairs:
            pairs[key] = _value(raw)
    return pairs


def _value(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw[1:-1]
    if raw == "None":
        return None
    if re.fullmatch(r"-?\d{1,18}", raw):
        return int(raw)
    return raw


def init_sentry(*, dsn: str, traces_sample_rate: float = 0.0) -> None:
    """Start sentry-sdk with its Django integration (unhandled exceptions in views and
    ERROR log records are reported). No personal data: users' addresses, cookies and
    bodies stay out of the reports."""
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        integrations=[DjangoIntegration()],
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
    )
