from __future__ import annotations

import json
import logging
from uuid import UUID

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from generations import services
from generations.fal_webhooks import WebhookRejected, check_webhook_token, verify_webhook
from veoproject import metrics
from veoproject.exceptions import error_body

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 1024 * 1024


@csrf_exempt  # fal signs its webhooks; there is no session here
@require_POST
def fal_webhook(request: HttpRequest) -> JsonResponse:
    """fal's completion webhook: check that it is about our job (the URL's token), that fal
    signed it, then apply it through the idempotent services (which check the job's id).

    401 refuses a webhook that changes nothing; fal retries it for two hours. A job of our
    own that is not the generation's job gets a 200 (outcome "surplus", logged
    `event=fal_webhook_surplus`) only when we know we sent it: a resubmit's job found
    surplus is remembered (`services.submission.is_surplus_job`). The job of a submit
    that had no answer, when a later submit's job was recorded, never told us its id: its
    webhook carries a valid token and signature, but so does another fal customer's job
    pointed at a leaked URL, and the two cannot be told apart. It stays refused (401, fal
    retries, nothing moves): the one cost is fal's retries for a job already counted as a
    possible duplicate (`fal_submit_count`, the admin's possible extra cost).
    """
    if int(request.headers.get("Content-Length") or 0) > MAX_WEBHOOK_BYTES:
        metrics.webhook_rejected(reason="too_large")
        return JsonResponse(error_body("too_large", "The webhook body is too large."), status=413)
    try:
        generation_id = UUID(request.GET.get("generation", ""))
    except ValueError:
        metrics.webhook_rejected(reason="bad_generation")
        return JsonResponse(error_body("invalid", "Malformed webhook."), status=400)
    body = request.body
    try:
        # The token first: it costs no key fetch, and most forgeries stop there.
        check_webhook_token(generation_id, request.GET.get("token", ""))
        signed = verify_webhook(body=body, headers=request.headers)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            metrics.webhook_rejected(reason="bad_body")
            return JsonResponse(error_body("invalid", "Malformed webhook."), status=400)
        outcome = services.apply_webhook(
            generation_id=generation_id,
            payload=payload,
            request_id=signed.request_id,
            user_id=signed.user_id,
        )
    except WebhookRejected as exc:
        # Staff see the raw cause and the metric the check that failed; the sender only
        # the coarse code (which check failed would guide a forger).
        logger.warning(
            "event=fal_webhook_rejected generation=%s reason=%r check=%s",
            generation_id,
            str(exc),
            exc.reason,
        )
        metrics.webhook_rejected(reason=exc.reason)
        return JsonResponse(error_body(exc.code, exc.public_message), status=401)
    logger.info(
        "event=fal_webhook generation=%s request=%s outcome=%s",
        generation_id,
        signed.request_id,
        outcome,
    )
    return JsonResponse({"ok": True, "outcome": outcome})
