"""Stateless pieces of the fake's HTTP surface: routing, canned errors, byte ranges."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from .storage import classify_storage
from .transport import Reply

NGINX_PAGE = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class RecordedRequest:
    time: float  # wall clock
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, else the raw text, else None
    kind: str  # submit/status/result/cancel/files/jwks/unknown
    status: int | str | None = None  # HTTP status, or "drop"/"reset"
    fault: str | None = None
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def classify(method: str, segs: list[str]) -> str:
    """Which fal endpoint a request is for (kinds double as fault targets)."""
    storage = classify_storage(method, segs)  # upload/uploaded, before "files" and submit
    if storage is not None:
        return storage
    if segs == [".well-known", "jwks.json"]:
        kind, allowed = "jwks", ("GET",)
    elif len(segs) == 2 and segs[0] == "files":
        kind, allowed = "files", ("GET", "HEAD")
    elif len(segs) == 4 and segs[2] == "requests":
        kind, allowed = "result", ("GET",)
    elif len(segs) == 5 and segs[2] == "requests" and segs[4] in ("status", "cancel"):
        kind, allowed = segs[4], ("GET",) if segs[4] == "status" else ("PUT",)
    elif len(segs) >= 2 and segs[2:3] != ["requests"]:
        kind, allowed = "submit", ("POST",)
    else:
        return "unknown"
    return kind if method in allowed else "method_not_allowed"


def http_error(code: int, nginx: bool | None) -> Reply:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:  # e.g. 499, which http.HTTPStatus does not know
        phrase = "Error"
    if code in (502, 503, 504) and nginx is not False:
        # The ingress page: no x-fal-request-id and "nginx" in the body -> the client
        # treats it as retryable (fal.md §1.7).
        body = NGINX_PAGE.format(code=code, phrase=phrase).encode()
        return Reply(code, body, {"Content-Type": "text/html"})
    payload: dict[str, Any] = {"detail": phrase}
    if code >= 500:
        payload["error_type"] = "internal_error"
    return Reply.json(code, payload, {"x-fal-request-id": str(uuid.uuid4())})


def ranged(data: bytes, range_header: str | None) -> Reply:
    headers = {"Content-Type": "video/mp4", "Accept-Ranges": "bytes"}
    if not range_header or not range_header.startswith("bytes=") or "," in range_header:
        return Reply(200, data, headers)
    start_s, _, end_s = range_header.removeprefix("bytes=").partition("-")
    size = len(data)
    try:
        if start_s:
            start, end = int(start_s), int(end_s) if end_s else size - 1
        else:
            start, end = max(0, size - int(end_s)), size - 1
    except ValueError:
        return Reply(200, data, headers)
    if start >= size or start > end:
        return Reply(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
    end = min(end, size - 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Reply(206, data[start : end + 1], headers)


def spoiled(kind: str, reply: Reply) -> Reply:
    """A 2xx answer made unreadable for fal-client (``config.ANSWER_FAULTS``); anything
    else is left as it is."""
    if reply.action != "send" or not 200 <= reply.status < 300:
        return reply
    if kind == "not_json":
        page = b"<html><body><h1>OK</h1></body></html>"
        return Reply(200, page, {"Content-Type": "text/html"})
    try:
        payload = json.loads(reply.body)
    except ValueError:
        return reply
    if not isinstance(payload, dict) or "status" not in payload:
        return reply  # only status bodies carry these fields
    if kind == "unknown_status":
        payload["status"] = "PAUSED"
    elif kind == "missing_fields":
        payload.pop("logs", None)
        payload.pop("queue_position", None)
    return Reply.json(reply.status, payload, {**reply.headers})
