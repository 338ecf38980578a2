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

from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from generations.models import Generation
from generations.validation import MIN_IMAGE_SIDE
from veoproject.languages import grouped

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from generations.estimates import Estimate


@dataclass(frozen=True)
class Reason:
    """Why a video was not made (`what`) and what to do about it (`advice`), translated
    lazily: each is read in the language active where it is shown (a page, an email)."""

    what_text: StrOrPromise
    advice_text: StrOrPromise

    @property
    def what(self) -> str:
        return str(self.what_text)

    @property
    def advice(self) -> str:
        return str(self.advice_text)

    def __str__(self) -> str:
        """Both in one line: the API's `error.message`."""
        return f"{self.what} {self.advice}"


# One entry per failure code the services record (generations/services/, `fail_for_fal`).
FAILURE_REASONS: dict[str, Reason] = {
    "invalid_input": Reason(
        gettext_lazy("The video could not be made from this image and prompt."),
        gettext_lazy("Use another image or change the prompt, then try again."),
    ),
    "invalid_image_url": Reason(
        format_lazy(
            gettext_lazy(
                "The image at the link you gave could not be used: it could not be downloaded, "
                "or it is not a JPEG, PNG or WebP image of at least {min_side} pixels on its "
                "shorter side."
            ),
            min_side=MIN_IMAGE_SIDE,
        ),
        gettext_lazy("Use another image, then try again."),
    ),
    "content_policy": Reason(
        gettext_lazy("The prompt or the image was refused by the content rules."),
        gettext_lazy("Change the prompt or use another image, then try again."),
    ),
    "timeout": Reason(
        gettext_lazy("The video took too long to make."),
        gettext_lazy("Try again: a second attempt usually works."),
    ),
    "upstream_error": Reason(
        gettext_lazy("Something went wrong while the video was being made."),
        gettext_lazy("Try again in a few minutes."),
    ),
    "expired": Reason(
        gettext_lazy("The finished video could not be collected in time."),
        gettext_lazy("Try again in a few minutes."),
    ),
    "storage_error": Reason(
        gettext_lazy("The finished video could not be saved."),
        gettext_lazy("Try again in a few minutes."),
    ),
    "canceled": Reason(
        gettext_lazy("The video was stopped before it was finished."),
        gettext_lazy("Try again in a few minutes."),
    ),
}
UNKNOWN_FAILURE = FAILURE_REASONS["upstream_error"]
CANCELED = Reason(
    gettext_lazy("This video was canceled before it was made."),
    gettext_lazy("Try again when you are ready."),
)


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
        return _("Nothing was charged: %(credits)s credits returned.") % {
            "credits": grouped(generation.cost_credits)
        }
    returned = generation.cost_credits - charged
    if returned:
        return _(
            "This attempt was billed, so %(charged)s credits were spent and %(returned)s returned."
        ) % {"charged": grouped(charged), "returned": grouped(returned)}
    return _("This attempt was billed, so %(charged)s credits were spent.") % {
        "charged": grouped(charged)
    }


def ready_in(estimate: Estimate, *, now: datetime | None = None) -> str:
    """When an in-flight video will be ready, in words (`generations.estimates`): "usually
    ready in about 2 minutes" while it is waiting its usual turn, "ready in about 3
    minutes" once it is sent or has work ahead of it."""
    if estimate.overdue:
        return _("taking longer than usual, almost there")
    seconds = estimate.seconds_left(now)
    if seconds < 45:
        return _("almost ready")
    minutes = max(1, int(seconds / 60 + 0.5))
    if estimate.usual:
        return ngettext(
            "usually ready in about a minute",
            "usually ready in about %(minutes)d minutes",
            minutes,
        ) % {"minutes": minutes}
    return ngettext("ready in about a minute", "ready in about %(minutes)d minutes", minutes) % {
        "minutes": minutes
    }
