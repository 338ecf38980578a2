"""A generation's life: accept, submit, follow, finish or fail, cancel.

Every state change is a conditional UPDATE from the expected status(es), so a duplicate
webhook, a late poll, a task delivered twice or two workers racing change nothing the
second time. Money moves only through `accounts.ledger` (hold at accept; exactly one
capture or release), inside the same transaction as the status change that causes it.
Side effects (tasks, callbacks, fal cancels) are enqueued in `transaction.on_commit`.

The package's modules follow that life: `acceptance`, `submission`, `following` (polls and
webhooks), `finishing`, `settlement` (final states and their money) and `sweeping`. Import
from `generations.services`; the names below are its public interface.
"""

from generations.requests import validate_params
from generations.services.acceptance import AcceptResult, accept
from generations.services.finishing import finish
from generations.services.following import apply_status, apply_webhook, refresh_from_fal
from generations.services.settlement import cancel, fail
from generations.services.submission import (
    MAX_SUBMIT_ATTEMPTS,
    cancel_on_fal,
    fal_arguments,
    fal_webhook_url,
    generation_for_signed_image,
    signed_image_token,
    submit,
)
from generations.services.sweeping import SweepReport, in_flight_exists, sweep

__all__ = [
    "MAX_SUBMIT_ATTEMPTS",
    "AcceptResult",
    "SweepReport",
    "accept",
    "apply_status",
    "apply_webhook",
    "cancel",
    "cancel_on_fal",
    "fail",
    "fal_arguments",
    "fal_webhook_url",
    "finish",
    "generation_for_signed_image",
    "in_flight_exists",
    "refresh_from_fal",
    "signed_image_token",
    "submit",
    "sweep",
    "validate_params",
]
