"""`{% failed_video_cost %}` for the one page rendered without the site's context
processors and without the database: the 500 page (`veoproject.errors.server_error`).
Every other page reads `failed_video_cost` from the context
(`veoproject.context_processors.site`); both say `generations.refund_words`' sentence."""

from __future__ import annotations

from django import template

from generations import refund_words

register = template.Library()


@register.simple_tag
def failed_video_cost() -> str:
    """The sentence from the refund policies this process read lately, or "" (no promise)."""
    return refund_words.failed_video_cost_if_known()
