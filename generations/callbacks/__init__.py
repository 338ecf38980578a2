"""Callbacks to integrators: POST a finished generation's JSON to its `callback_url`.

- `signing`: the ``X-Veo-Signature`` header, and how a receiver verifies it.
- `delivery`: the attempts (claimed once each, retried with backoff), the address rule
  for callback URLs, and the POST itself.
- `slots`: the database leases that keep callbacks from filling every worker.
- `sweep`: re-enqueues a delivery whose next attempt a broker or a worker lost.

`generations.callbacks.deliver_callback` is a task path that django-q2 schedules stored
in existing databases name (`generations.tasks.TASKS`): it must keep resolving here.
"""

from __future__ import annotations

from generations.callbacks.delivery import (
    MAX_ATTEMPTS,
    CallbackUrlRefused,
    check_callback_url,
    deliver_callback,
    enqueue_callback,
    payload,
    retry_delay,
)
from generations.callbacks.signing import (
    SIGNATURE_HEADER,
    sign,
    signature_header,
    verify_signature,
)
from generations.callbacks.sweep import sweep_callbacks

__all__ = [
    "MAX_ATTEMPTS",
    "SIGNATURE_HEADER",
    "CallbackUrlRefused",
    "check_callback_url",
    "deliver_callback",
    "enqueue_callback",
    "payload",
    "retry_delay",
    "sign",
    "signature_header",
    "sweep_callbacks",
    "verify_signature",
]
