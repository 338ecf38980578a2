"""What a failed or canceled video costs, in one sentence that follows staff's refund policies.

A failed or canceled video costs nothing (its hold is released), except for the two reasons
staff may bill (`generations.costs`: refused by the content policy, canceled by the user
after rendering started) when their policy charges in full or a share. The landing page,
the studio's price box, the status of a video in progress and the 500 page all say this
sentence, so none of them promises "nothing" while a policy charges.

The 500 page must render without the database (it may be what failed): it says the
sentence from the policies this process last read, while they are at most `KNOWN_FOR`
seconds old (every page that says the sentence reads them), and nothing about costs
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import monotonic

from django.utils.translation import gettext as _

from generations.costs import Action, Reason, policy_for

KNOWN_FOR = 60.0  # seconds


@dataclass(frozen=True)
class Terms:
    """What the two billable reasons cost: an action ("refund", "charge", "share") and, for
    a share, its percent."""

    refused: tuple[str, int | None]
    canceled_after_start: tuple[str, int | None]


# The terms last read in this process and when (monotonic seconds), for the 500 page.
_last_read: dict[str, tuple[float, Terms]] = {}


def _read() -> Terms:
    refused = policy_for(Reason.CONTENT_POLICY)
    canceled = policy_for(Reason.CANCELED_AFTER_START)
    terms = Terms(
        refused=(refused.action, refused.share_percent),
        canceled_after_start=(canceled.action, canceled.share_percent),
    )
    _last_read["terms"] = (monotonic(), terms)
    return terms


def forget() -> None:
    """Drop the terms this process last read (tests; a staff change may call it too)."""
    _last_read.clear()


def _costs(action: str, percent: int | None) -> str | None:
    """What a policy charges in words ("which costs its full price"), None for a refund."""
    if action == Action.CHARGE:
        return _("which costs its full price")
    if action == Action.SHARE and percent:
        return _("which costs %(percent)s%% of its price") % {"percent": percent}
    return None


def sentence(terms: Terms) -> str:
    exceptions = []
    refused = _costs(*terms.refused)
    if refused:
        exceptions.append(_("one refused by the content rules, %(costs)s") % {"costs": refused})
    canceled = _costs(*terms.canceled_after_start)
    if canceled:
        exceptions.append(
            _("one you cancel after it started rendering, %(costs)s") % {"costs": canceled}
        )
    if not exceptions:
        return _("A video that fails or is canceled costs nothing.")
    if len(exceptions) == 1:
        return _("A video that fails or is canceled costs nothing, except %(exception)s.") % {
            "exception": exceptions[0]
        }
    return _(
        "A video that fails or is canceled costs nothing, except %(first)s, and %(second)s."
    ) % {"first": exceptions[0], "second": exceptions[1]}


def failed_video_cost() -> str:
    """The sentence for "what does a failed or canceled video cost?" under the active
    refund policies (no policy row for a reason means refund), read now."""
    return sentence(_read())


def failed_video_cost_if_known() -> str:
    """The sentence without touching the database, from the policies this process read
    at most KNOWN_FOR seconds ago; "" when it has not (the page then promises nothing)."""
    last = _last_read.get("terms")
    if last is None or monotonic() - last[0] > KNOWN_FOR:
        return ""
    return sentence(last[1])
