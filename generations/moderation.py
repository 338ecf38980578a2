"""Content moderation: blocked prompt terms and the visibility of generations."""

from __future__ import annotations

import unicodedata

from generations.models import BlockedTerm


def normalize_text(text: str) -> str:
    """NFKC + casefold, and whitespace collapsed, so trivial variants match the same."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def find_blocked_term(prompt: str) -> str | None:
    """The first active blocked term the prompt contains, or None."""
    text = normalize_text(prompt)
    for term in BlockedTerm.objects.filter(active=True).values_list("term", flat=True):
        if normalize_text(term) in text:
            return term
    return None
