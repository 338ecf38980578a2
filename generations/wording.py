"""What a person reads about a video that was not made: one plain reason and one sentence
of advice per failure code, and what it cost them; and when one in progress will be ready.

The portal's cards and pages, and the API's `error.message`, read these; the failure codes
themselves (`Generation.error_code`, the API's `error.code`) are unchanged. No vendor name,
internal code or upstream message appears here: what the video service said stays in the
generation's `error_message` and fal log, which staff read in the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from generations.models import Generation
from generations.validation import MIN_IMAGE_SIDE

if TYPE_CHECKING:
    from generations.estimates import Estimate


@dataclass(frozen=True)
class Reason:
    """Why a video was not made (`what`) and what to do about it (`advice`)."""

    what: str
    advice: str

    def __str__(self) -> str:
        """Both in one line: the API's `error.message`."""
        return f"{self.what} {self.advice}"


# One entry per failure code the services record (generations/services/, `fail_for_fal`).
FAILURE_REASONS: dict[str, Reason] = {
    "invalid_input": Reason(
        "The video could not be made from this image and prompt.",
        "Use another image or change the prompt, then try again.",
    ),
    "invalid_image_url": Reason(
        "The image at the link you gave could not be used: it could not be downloaded, "
        f"or it is not a JPEG, PNG or WebP image of at least {MIN_IMAGE_SIDE} pixels on its "
        "shorter side.",
        "Use another image, then try again.",
    ),
    "content_policy": Reason(
        "The prompt or the image was refused by the content rules.",
        "Change the prompt or use another image, then try again.",
    ),
    "timeout": Reason(
        "The video took too long to make.",
        "Try again: a second attempt usually works.",
    ),
    "upstream_error": Reason(
        "Something went wrong while the video was being made.",
        "Try again in a few minutes.",
    ),
    "expired": Reason(
        "The finished video could not be collected in time.",
        "Try again in a few minutes.",
    ),
    "storage_error": Reason(
        "The finished video could not be saved.",
        "Try again in a few minutes.",
    ),
    "canceled": Reason(
        "The video was stopped before it was finished.",
        "Try again in a few minutes.",
    ),
}
UNKNOWN_FAILURE = FAILURE_REASONS["upstream_error"]
CANCELED = Reason("This video was canceled before it was made.", "Try again when you are ready.")


def failure_reason(generation: Generation) -> Reason | None:
    """The reason to show for a failed or canceled generation; None for any other."""
    if generation.is_canceled:
        return CANCELED
    if generation.is_failed:
        return FAILURE_REASONS.get(generation.error_code, UNKNOWN_FAILURE)
    return None


def settlement(generation: Generation) -> str:
    """What a failed or canceled video cost: nothing (its hold was released), or what the
    refund policy charged for a video that was billed all the same."""
    charged = generation.policy_charged_credits
    if not charged:
        return f"Nothing was charged: {generation.cost_credits:,} credits returned."
    returned = generation.cost_credits - charged
    line = f"This attempt was billed, so {charged:,} credits were spent"
    return f"{line} and {returned:,} returned." if returned else f"{line}."


def ready_in(estimate: Estimate, *, now: datetime | None = None) -> str:
    """When an in-flight video will be ready, in words (`generations.estimates`): "usually
    ready in about 2 minutes" while it is waiting its usual turn, "ready in about 3
    minutes" once it is sent or has work ahead of it."""
    if estimate.overdue:
        return "taking longer than usual, almost there"
    seconds = estimate.seconds_left(now)
    if seconds < 45:
        return "almost ready"
    minutes = max(1, int(seconds / 60 + 0.5))
    about = "about a minute" if minutes == 1 else f"about {minutes} minutes"
    return f"usually ready in {about}" if estimate.usual else f"ready in {about}"
