"""Content moderation: blocked prompt terms and the visibility of generations.

Blocked terms match whole words or phrases of the prompt after normalisation, so trivial
spellings do not get around them while "class" is not refused for the term "ass":

- NFKC (full-width letters, ligatures, superscripts fold to plain ones), casefold,
  accents dropped (``nudé`` reads ``nude``), invisible format characters removed (zero-width
  space/joiners, soft hyphen, BOM);
- punctuation, symbols and whitespace between words count as one separator, so
  ``blood-bath``, ``blood  bath`` and ``blood_bath`` match the term ``blood bath``; a phrase
  also matches written as one word (``bloodbath``);
- letters spelled out one by one (``n u d e``, ``n.u.d.e``) are read joined as well;
- a term ending in ``*`` matches words that start with it (``nude*`` matches ``nudes``), a
  term starting with ``*`` words that end with it;
- in scripts written without spaces between words (CJK, Thai...), a term matches anywhere.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from generations.models import BlockedTerm, Generation
from veoproject import audit
from veoproject.exceptions import ValidationFailed
from veoproject.local_cache import LocalCache

Moderation = Generation.Moderation

# Scripts written without spaces between words: a term there matches anywhere.
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0002ffff]"
)


def _fold(text: str) -> str:
    """NFKC + casefold, accents and invisible format characters (category Cf) removed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed.isascii():  # no marks nor format characters in ASCII
        return decomposed
    return unicodedata.normalize("NFC", decomposed.translate(_MARKS))


class _Marks(dict):
    """For `str.translate`: a code point -> None when `_fold` drops it (categories Mn,
    combining marks such as accents once decomposed, and Cf, invisible format characters),
    else itself. Filled in as text is folded, so a character seen before costs a lookup in
    C instead of a Python test per character; up to `limit` characters are remembered
    (a prompt of rare characters cannot grow it without bound)."""

    limit = 50_000

    def __missing__(self, code: int) -> int | None:
        value = None if unicodedata.category(chr(code)) in ("Mn", "Cf") else code
        if len(self) < self.limit:
            self[code] = value
        return value


_MARKS = _Marks()


def _words(text: str) -> list[str]:
    """The folded text's words: runs of letters and digits (``_`` counts as a separator)."""
    return re.findall(r"[^\W_]+", _fold(text))


def normalize_text(text: str) -> str:
    """The words of a text, folded and joined by single spaces: what terms match against."""
    return " ".join(_words(text))


def _spelled_out_runs(words: list[str]) -> list[str]:
    """Runs of two or more one-letter words, joined: ``a n u d e cat`` -> ``["anude"]``."""
    runs: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) >= 2:
            runs.append("".join(run))
        run = []
    return runs


@lru_cache(maxsize=4096)
def term_pattern(term: str) -> re.Pattern[str] | None:
    """The regular expression a blocked term compiles to (None if it has no letters)."""
    stripped = term.strip()
    prefix = stripped.endswith("*")
    suffix = stripped.startswith("*")
    words = _words(stripped.strip("*"))
    if not words:
        return None
    # Words of a phrase may be separated by one space or written together.
    body = " ?".join(re.escape(word) for word in words)
    start = "" if suffix or _UNSPACED.match(words[0][0]) else r"(?<![^\W_])"
    end = "" if prefix or _UNSPACED.match(words[-1][-1]) else r"(?![^\W_])"
    return re.compile(start + body + end)


# The active terms as last read in this process, kept LOCAL_CACHE_SECONDS: a term staff
# add or switch off applies at once in the process that saved it, within that long in the
# others (see veoproject/local_cache.py).
_active_terms = LocalCache[tuple[str, ...]]("moderation.active_terms", invalidated_by=[BlockedTerm])


def active_terms() -> tuple[str, ...]:
    """The active blocked terms: one query, or none while the local cache holds them."""
    return _active_terms.get(
        None, lambda: tuple(BlockedTerm.objects.filter(active=True).values_list("term", flat=True))
    )


def find_blocked_term(prompt: str) -> str | None:
    """The first active blocked term the prompt contains, or None."""
    words = _words(prompt)
    text = " ".join(words)
    # Letters spelled out one by one may be preceded by a real one-letter word ("a n u d e"),
    # so a term matches anywhere inside such a run.
    runs = _spelled_out_runs(words)
    for term in active_terms():
        pattern = term_pattern(term)
        if pattern is None:
            continue
        if pattern.search(text) or _in_runs(_compact(term), runs):
            return term
    return None


def _compact(term: str) -> str:
    return "".join(_words(term.strip("*")))


def _in_runs(compact: str, runs: list[str]) -> bool:
    return len(compact) >= 2 and any(compact in run for run in runs)


def validate_term(term: str) -> str:
    """A term staff may add: it must contain letters or digits, and a term shorter than 3
    characters only as a whole word (``ab*`` would refuse half the dictionary)."""
    term = term.strip()
    words = _words(term.strip("*"))
    if not words:
        raise ValidationFailed(
            "A blocked term needs letters or digits.", fields={"term": ["Needs letters."]}
        )
    if "*" in term and len("".join(words)) < 3:
        raise ValidationFailed(
            "A wildcard term needs at least 3 letters.",
            fields={"term": ["A wildcard term needs at least 3 letters."]},
        )
    if "*" in term.strip("*"):
        raise ValidationFailed(
            "Use * only at the start or the end of a term.",
            fields={"term": ["Use * only at the start or the end."]},
        )
    return term


# --- Visibility of generations ------------------------------------------------------------


def _set_state(
    *,
    generation: Generation,
    actor: User,
    state: str,
    reason: str,
    message: str,
    allowed_from: tuple[str, ...],
) -> bool:
    """Move one generation to `state` if it is in `allowed_from`; False (and nothing
    recorded) otherwise or if it is already there with that reason. The row is locked and
    only the moderation fields are written, so a worker finishing the job meanwhile keeps
    its own changes."""
    with transaction.atomic():
        current = (
            Generation.objects.select_for_update()
            .values("moderation_state", "moderation_reason")
            .get(pk=generation.pk)
        )
        if current["moderation_state"] not in allowed_from or (
            current["moderation_state"] == state and current["moderation_reason"] == reason
        ):
            return False
        now = timezone.now()
        Generation.objects.filter(pk=generation.pk).update(
            moderation_state=state,
            moderation_reason=reason,
            moderated_by=actor,
            moderated_at=now,
            updated_at=now,
        )
        generation.moderation_state = state
        generation.moderation_reason = reason
        generation.moderated_by = actor
        generation.moderated_at = now
        audit.record(actor=actor, objects=[generation], action_flag=audit.CHANGE, message=message)
    return True


def hide(*, generation: Generation, actor: User, reason: str) -> bool:
    """Remove a generation from its owner's view (staff still see it). The owner sees
    "removed by moderation" and the reason. Returns False if nothing changed."""
    reason = audit.require_reason(reason)
    return _set_state(
        generation=generation,
        actor=actor,
        state=Moderation.HIDDEN,
        reason=reason,
        message=f"Hidden by moderation: {reason}",
        allowed_from=tuple(Moderation.values),
    )


def unhide(*, generation: Generation, actor: User, reason: str) -> bool:
    """Make a hidden or flagged generation visible again; the reason goes to the audit
    trail and the generation's own reason is cleared. Returns False if nothing changed."""
    reason = audit.require_reason(reason)
    return _set_state(
        generation=generation,
        actor=actor,
        state=Moderation.VISIBLE,
        reason="",
        message=f"Made visible again: {reason}",
        allowed_from=(Moderation.HIDDEN, Moderation.FLAGGED),
    )


def flag(*, generation: Generation, actor: User, reason: str) -> bool:
    """Mark a generation for review; it stays visible. A hidden generation stays hidden
    (flagging never reveals content). Returns False if nothing changed."""
    reason = audit.require_reason(reason)
    return _set_state(
        generation=generation,
        actor=actor,
        state=Moderation.FLAGGED,
        reason=reason,
        message=f"Flagged for review: {reason}",
        allowed_from=(Moderation.VISIBLE, Moderation.FLAGGED),
    )
