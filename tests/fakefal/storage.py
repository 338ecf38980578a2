"""fal's storage, as fal-client 1.0.3 uploads to it (fal.md §1.12). Mixed into ``FakeFal``.

Real fal spreads it over two hosts, ``rest.fal.ai`` (tokens, GCS initiate) and
``v3.fal.media`` (the upload, the files); fal-client hard-codes both as the module
globals ``fal_client.client.REST_URL`` and ``CDN_URL``. The fake serves both on its one
host: point both at ``base_url`` (the ``fake_fal`` fixture does; a worker process gets
FAL_STORAGE_REST_URL / FAL_STORAGE_CDN_URL, which ``FalGateway.upload_image`` applies).

1. ``POST /storage/auth/token?storage_type=fal-cdn-v3`` (``Authorization: Key ...``,
   body ``{}``) -> ``{token, token_type, base_url, expires_at}`` (fal-client caches the
   token until ``expires_at``).
2. ``POST /files/upload`` (``Authorization: <token_type> <token>``, ``Content-Type``,
   ``X-Fal-File-Name``, ``X-Fal-Object-Lifecycle``, the raw bytes) -> ``{access_url}``.
3. The client's fallback when 2 fails: ``POST /storage/upload/initiate?storage_type=gcs``
   (Key auth, ``{file_name, content_type}``, ``X-Fal-Object-Lifecycle-Preference``) ->
   ``{upload_url, file_url}``, then ``PUT upload_url`` with the bytes.

The file is then served at ``GET /files/uploads/<id>/<name>`` (the ``access_url`` or
``file_url``), so the fake's runner could fetch it, until its lifecycle's
``expiration_duration_seconds`` have passed (then 404).

Request kinds: every storage write (1-3) is ``upload``, one fault target
(``fail_next("upload", 500)`` hits the next storage request, which is the token request
unless the client holds one); reading a file is ``uploaded``.
Multipart uploads (files over 100 MB) are not spoken: input images are far smaller.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .transport import Reply, Request

if TYPE_CHECKING:
    from .queue_api import State

TOKEN_SECONDS = 3600
TOKEN_TYPE = "Bearer"
STORAGE_KINDS = ("upload", "uploaded")


@dataclass
class Upload:
    """One file put on the fake's storage."""

    id: str
    url: str  # where it is served (fal's access_url / file_url)
    file_name: str | None  # X-Fal-File-Name, or the initiate body's file_name
    content_type: str
    data: bytes
    via: str  # "cdn" (POST /files/upload) or "gcs" (initiate + PUT)
    lifecycle: dict[str, Any] | None  # the X-Fal-Object-Lifecycle(-Preference) JSON
    time: float  # wall clock
    expires: float | None = None  # monotonic; None: kept


@dataclass
class StorageState:
    """Everything ``reset()`` throws away."""

    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    uploads: dict[str, Upload] = field(default_factory=dict)  # id -> completed upload
    initiated: dict[str, tuple[str, Upload]] = field(default_factory=dict)  # id -> (sig, upload)


def classify_storage(method: str, segs: list[str]) -> str | None:
    """The storage request kinds (see ``routes.classify``); None if not storage."""
    writes = (["storage", "auth", "token"], ["files", "upload"], ["storage", "upload", "initiate"])
    if segs in writes:
        return "upload" if method == "POST" else "method_not_allowed"
    if len(segs) == 3 and segs[:2] == ["storage", "gcs"]:
        return "upload" if method == "PUT" else "method_not_allowed"
    if len(segs) == 4 and segs[:2] == ["files", "uploads"]:
        return "uploaded" if method in ("GET", "HEAD") else "method_not_allowed"
    return None


class StorageAPI:
    """Route handlers for storage requests; they run under ``FakeFal._lock``."""

    _lock: threading.RLock
    _state: State
    _storage: StorageState
    base_url: str  # provided by FakeFal

    def _authorized(self, req: Request) -> bool:  # pragma: no cover - FakeFal's Key check
        raise NotImplementedError

    # ------------------------------------------------------------------ inspection

    def uploads(self) -> list[Upload]:
        """Completed uploads, oldest first."""
        with self._lock:
            return list(self._storage.uploads.values())

    def upload_at(self, url: str) -> Upload | None:
        """The upload served at ``url`` (an access_url the client got back)."""
        with self._lock:
            return next((u for u in self._storage.uploads.values() if u.url == url), None)

    # ------------------------------------------------------------------ routes

    def _storage_route(self, req: Request, kind: str, segs: list[str]) -> Reply:
        if kind == "uploaded":
            return self._serve_upload(segs[2])
        if segs == ["storage", "auth", "token"]:
            return self._cdn_token(req)
        if segs == ["files", "upload"]:
            return self._cdn_upload(req)
        if segs == ["storage", "upload", "initiate"]:
            return self._gcs_initiate(req)
        return self._gcs_put(req, segs[2])

    def _cdn_token(self, req: Request) -> Reply:
        if not self._authorized(req):
            return _unauthorized()
        token = secrets.token_urlsafe(24)
        self._storage.tokens[token] = time.monotonic() + TOKEN_SECONDS
        expires_at = datetime.now(UTC) + timedelta(seconds=TOKEN_SECONDS)
        payload = {
            "token": token,
            "token_type": TOKEN_TYPE,
            "base_url": self.base_url,
            "expires_at": expires_at.isoformat(),
        }
        return Reply.json(200, payload)

    def _cdn_upload(self, req: Request) -> Reply:
        scheme, _, token = (req.header("Authorization") or "").partition(" ")
        expiry = self._storage.tokens.get(token.strip())
        if scheme != TOKEN_TYPE or expiry is None or expiry < time.monotonic():
            return _unauthorized()
        if not req.raw:
            return Reply.json(400, {"detail": "Empty upload"})
        upload = self._new_upload(
            file_name=req.header("X-Fal-File-Name"),
            content_type=req.header("Content-Type") or "application/octet-stream",
            lifecycle=_lifecycle(req.header("X-Fal-Object-Lifecycle")),
            via="cdn",
        )
        self._store(upload, req.raw)
        return Reply.json(200, {"access_url": upload.url})

    def _gcs_initiate(self, req: Request) -> Reply:
        if not self._authorized(req):
            return _unauthorized()
        body = req.json()
        if not isinstance(body, dict) or not body.get("content_type"):
            return Reply.json(422, {"detail": "file_name and content_type are required"})
        upload = self._new_upload(
            file_name=body.get("file_name"),
            content_type=str(body["content_type"]),
            lifecycle=_lifecycle(req.header("X-Fal-Object-Lifecycle-Preference")),
            via="gcs",
        )
        signature = secrets.token_urlsafe(16)
        self._storage.initiated[upload.id] = (signature, upload)
        upload_url = f"{self.base_url}/storage/gcs/{upload.id}?signature={signature}"
        return Reply.json(200, {"upload_url": upload_url, "file_url": upload.url})

    def _gcs_put(self, req: Request, upload_id: str) -> Reply:
        signature, upload = self._storage.initiated.get(upload_id, ("", None))
        if upload is None or not secrets.compare_digest(req.query.get("signature", ""), signature):
            return Reply.json(403, {"detail": "Invalid signature"})
        del self._storage.initiated[upload_id]
        upload.content_type = req.header("Content-Type") or upload.content_type
        self._store(upload, req.raw)
        return Reply(200)

    def _serve_upload(self, upload_id: str) -> Reply:
        upload = self._storage.uploads.get(upload_id)
        if upload is None or (upload.expires is not None and upload.expires < time.monotonic()):
            return Reply.json(404, {"detail": "Not Found"})
        return Reply(200, upload.data, {"Content-Type": upload.content_type})

    # ------------------------------------------------------------------ helpers

    def _new_upload(
        self,
        *,
        file_name: str | None,
        content_type: str,
        lifecycle: dict[str, Any] | None,
        via: str,
    ) -> Upload:
        upload_id = uuid.uuid4().hex
        name = re.sub(r"[^A-Za-z0-9._-]", "_", file_name or "upload.bin")
        seconds = (lifecycle or {}).get("expiration_duration_seconds")
        return Upload(
            id=upload_id,
            url=f"{self.base_url}/files/uploads/{upload_id}/{name}",
            file_name=file_name,
            content_type=content_type,
            data=b"",
            via=via,
            lifecycle=lifecycle,
            time=time.time(),
            expires=time.monotonic() + float(seconds) if seconds else None,
        )

    def _store(self, upload: Upload, data: bytes) -> None:
        upload.data = data
        self._storage.uploads[upload.id] = upload
        self._state.counters[f"uploads.{upload.via}"] += 1


def _lifecycle(header: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(header) if header else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _unauthorized() -> Reply:
    return Reply.json(401, {"detail": "No user found for Key ID and Secret"})
