"""Serving a stored file over HTTP: byte ranges and conditional requests (RFC 9110).

`file_response` is the one place that answers `Range`, `If-Range`, `If-None-Match` and
`If-Modified-Since` for a file we serve ourselves:

- one range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) answers 206 with `Content-Range` and
  only those bytes, read from the file as they are sent (never the whole file in memory);
- a range wholly past the end answers 416 with `Content-Range: bytes */<size>`;
- a malformed header, several ranges, or an `If-Range` that no longer matches answer 200
  with the whole file, as RFC 9110 lets a server do;
- validators are a strong `ETag` from the size and the modification time (to the
  nanosecond) and `Last-Modified`; a matching `If-None-Match` / `If-Modified-Since`
  answers 304 (Django's own `get_conditional_response` decides, and 412 for the If-Match
  pair);
- HEAD answers the headers of a GET without opening a body.

Range handling is defined for GET only (RFC 9110 §14.2): other methods get the whole file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe

from veoproject.exceptions import error_body

# One range, bytes unit (case-insensitive, RFC 9110 §14.1), optional whitespace around it.
_SINGLE_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
# Longer headers are no single range of any file we hold: ignored, whole file sent.
_MAX_RANGE_HEADER = 100


class RangeNotSatisfiable(Exception):
    """The Range header asks only for bytes past the end of the file."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    stop: int  # exclusive

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{size}"


def parse_range(header: str, size: int) -> ByteRange | None:
    """The one range `header` asks for in a file of `size` bytes, clipped to the file.

    None when the whole file should be sent instead: no header, a malformed one, or
    several ranges (which a server may ignore). Raises RangeNotSatisfiable when the range
    starts past the end, asks for a zero-length suffix, or the file is empty.
    """
    if not header or len(header) > _MAX_RANGE_HEADER:
        return None
    match = _SINGLE_RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # bytes=-n: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(size - suffix, 0), size)
    start = int(first)
    if last and int(last) < start:
        return None  # bytes=9-3 is invalid, not unsatisfiable: ignored
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, size if not last else min(int(last) + 1, size))


@dataclass(frozen=True)
class FileState:
    """What the validators are made of: the file as it is open now."""

    size: int
    modified_ns: int

    @classmethod
    def of(cls, file: IO[bytes]) -> FileState:
        stat = os.fstat(file.fileno())
        return cls(size=stat.st_size, modified_ns=stat.st_mtime_ns)

    @property
    def etag(self) -> str:
        """Strong: a file rewritten in place gets another mtime, and so another tag."""
        return f'"{self.size:x}-{self.modified_ns:x}"'

    @property
    def last_modified(self) -> int:
        return self.modified_ns // 1_000_000_000


def _if_range_matches(header: str, state: FileState) -> bool:
    """RFC 9110 §13.1.5: a strong ETag compared strongly, or exactly our Last-Modified."""
    header = header.strip()
    if header.startswith(('"', "W/")):
        return header == state.etag
    return parse_http_date_safe(header) == state.last_modified


class _Slice:
    """`length` bytes of an open file from `start`, read a block at a time as they are
    sent. No `fileno`: a server's sendfile would send the whole file from there."""

    def __init__(self, file: IO[bytes], start: int, length: int) -> None:
        file.seek(start)
        self._file, self._left = file, length

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._file.read(size) if size > 0 else b""
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


def file_response(
    request: HttpRequest,
    file: IO[bytes],
    *,
    content_type: str,
    filename: str,
    headers: Mapping[str, str],
) -> HttpResponseBase:
    """Answer `request` with the open `file` (which this takes over and closes), or the
    part of it a Range asks for, or 304/412/416. `headers` go on every answer."""
    try:
        state = FileState.of(file)
    except BaseException:
        file.close()
        raise
    validators = {
        "ETag": state.etag,
        "Last-Modified": http_date(state.last_modified),
        "Accept-Ranges": "bytes",
    }
    precondition = get_conditional_response(
        request, etag=state.etag, last_modified=state.last_modified
    )
    if precondition is not None:  # 304, or 412 for a failed If-Match / If-Unmodified-Since
        file.close()
        if precondition.status_code == 412:
            message = "The file has changed since the version this request names."
            precondition = JsonResponse(error_body("precondition_failed", message), status=412)
        return _with(precondition, validators, headers)

    byte_range = None
    if request.method == "GET" and "HTTP_RANGE" in request.META:
        if_range = request.META.get("HTTP_IF_RANGE")
        if if_range is None or _if_range_matches(if_range, state):
            try:
                byte_range = parse_range(request.META["HTTP_RANGE"], state.size)
            except RangeNotSatisfiable:
                file.close()
                message = f"The range is outside the file ({state.size} bytes)."
                refused = JsonResponse(error_body("range_not_satisfiable", message), status=416)
                refused["Content-Range"] = f"bytes */{state.size}"
                return _with(refused, validators, headers)

    if request.method == "HEAD":
        file.close()
        response: HttpResponseBase = HttpResponse(content_type=content_type)
        response["Content-Disposition"] = content_disposition_header(False, filename) or ""
    elif byte_range is None:
        response = FileResponse(file, content_type=content_type, filename=filename)
    else:
        part = _Slice(file, byte_range.start, byte_range.length)
        response = FileResponse(part, content_type=content_type, filename=filename, status=206)
        response["Content-Range"] = byte_range.content_range(state.size)
    response["Content-Length"] = str(byte_range.length if byte_range else state.size)
    return _with(response, validators, headers)


def _with(
    response: HttpResponseBase, validators: Mapping[str, str], headers: Mapping[str, str]
) -> HttpResponseBase:
    for name, value in {**validators, **headers}.items():
        response[name] = value
    return response
