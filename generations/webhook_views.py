from __future__ import annotations

import json
import logging
from uuid import UUID

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from generations import services
from generations.fal_webhooks import WebhookRejected, verify_webhook
from veoproject.exceptions import error_body

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1024 * 1024


@csrf_exempt  # fal signs its webhooks; there is no session here
@require_POST
def fal_webhook(request: HttpRequest) -> JsonResponse:
    """fal's completion webhook: verify, then apply through the idempotent services."""
    if int(request.headers.get("Content-Length") or 0) > MAX_WEBHOOK_BYTES:
        return JsonResponse(error_body("too_large", "The webhook body is too large."), status=413)
    body = request.body
    try:
        verify_webhook(body=body, headers=request.headers)
    except WebhookRejected as exc:
        logger.warning("event=fal_webhook_rejected reason=%s", exc)
        return JsonResponse(
            error_body("invalid_signature", "The webhook signature is not valid."), status=401
        )
    try:
        generation_id = UUID(request.GET.get("generation", ""))
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError
    except ValueError:
        return JsonResponse(error_body("invalid", "Malformed webhook."), status=400)
    outcome = services.apply_webhook(generation_id=generation_id, payload=payload)
    logger.info(
        "event=fal_webhook generation=%s request=%s outcome=%s",
        generation_id,
        payload.get("request_id"),
        outcome,
    )
    return JsonResponse({"ok": True, "outcome": outcome})
