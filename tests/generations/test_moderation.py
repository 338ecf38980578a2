"""Blocked prompt terms: trivial spellings are caught, innocent words are not."""

from __future__ import annotations

import pytest

from generations.models import BlockedTerm
from generations.moderation import find_blocked_term, normalize_text, validate_term
from veoproject.exceptions import ValidationFailed


@pytest.fixture
def terms(db):
    for term in ["nude", "blood bath", "ass", "explicit*", "*bomb", "裸体"]:
        BlockedTerm.objects.create(term=term)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a nude figure on a beach", "nude"),
        ("A NUDE figure", "nude"),
        ("a \uff2e\uff55\uff44\uff45 figure", "nude"),  # full-width letters (NFKC)
        ("a nu\u200dde figure", "nude"),  # zero-width joiner
        ("a nu\u200bde figure", "nude"),  # zero-width space
        ("a nu\u00adde figure", "nude"),  # soft hyphen
        ("a n\ufeffude figure", "nude"),  # byte-order mark
        ("a nudé figure", "nude"),  # accent
        ("a n u d e figure", "nude"),  # spelled out
        ("a n.u.d.e figure", "nude"),
        ("a n-u-d-e figure", "nude"),
        ("nude.", "nude"),
        ("a blood bath", "blood bath"),
        ("a blood-bath", "blood bath"),
        ("a blood   bath", "blood bath"),
        ("a bloodbath", "blood bath"),
        ("a BLOOD_BATH", "blood bath"),
        ("explicitly shown", "explicit*"),
        ("a firebomb", "*bomb"),
        ("一个裸体的人", "裸体"),
    ],
)
def test_variants_of_a_blocked_term_are_found(terms, prompt, expected):
    assert find_blocked_term(prompt) == expected


@pytest.mark.parametrize(
    "prompt",
    [
        "a class act at the grass field",  # "ass" inside words
        "an assassin walks in",
        "bombastic music",  # *bomb matches word ends only
        "a blood orange bath",
        "nudes",  # whole word: a plain term does not match longer words
        "a cat walks across a misty lake",
        "",
    ],
)
def test_innocent_prompts_pass(terms, prompt):
    assert find_blocked_term(prompt) is None


def test_inactive_terms_do_not_block(db):
    BlockedTerm.objects.create(term="nude", active=False)
    assert find_blocked_term("a nude figure") is None


def test_normalize_text_folds_width_case_accents_and_invisibles():
    assert normalize_text("  \uff28\u00e9llo\u200b, WORLD!! ") == "hello world"


@pytest.mark.parametrize("term", ["", "   ", "***", "!!", "ab*", "a*b"])
def test_unusable_terms_are_refused(term):
    with pytest.raises(ValidationFailed):
        validate_term(term)


def test_a_blocked_prompt_is_refused_at_accept_and_nothing_is_charged(user):
    from generations import services

    BlockedTerm.objects.create(term="nude")
    params = {
        "prompt": "A \uff4e\u200b\uff35de portrait",
        "image_url": "https://images.example.com/a.jpg",
        "aspect_ratio": "16:9",
        "duration": "8s",
        "resolution": "720p",
        "generate_audio": True,
    }
    with pytest.raises(ValidationFailed) as refused:
        services.accept(user=user, params=params)
    assert refused.value.code == "blocked_term"
    assert user.generations.count() == 0
    user.credit_account.refresh_from_db()
    assert (user.credit_account.balance, user.credit_account.reserved) == (1000, 0)


def test_folding_drops_exactly_the_marks_and_format_characters_of_all_unicode():
    """`_fold` drops by a table, not a test per character: the same text for every code
    point (surrogates aside: no prompt can carry them), one at a time and all together."""
    import sys
    import unicodedata

    from generations.moderation import _fold

    def by_category(text: str) -> str:  # what _fold did character by character
        text = unicodedata.normalize("NFKC", text).casefold()
        decomposed = unicodedata.normalize("NFKD", text)
        kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in ("Mn", "Cf"))
        return unicodedata.normalize("NFC", kept)

    everything = "".join(
        chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF
    )
    assert _fold(everything) == by_category(everything)
    for sample in (
        "Plain ASCII: Blood-Bath & 123!",
        "Nud\u00e9\u200bs",
        "\uff4e\uff55\uff44\uff45",
        "\ufb01re\u00adarm",
        "e\u0301\u0327",
    ):
        assert _fold(sample) == by_category(sample)


def test_prompts_of_ever_new_characters_cannot_grow_the_fold_cache(monkeypatch):
    """Any user sends the prompt: one made of thousands of distinct rare characters, again
    and again, must not grow a worker's memory without bound, and is still folded right."""
    import unicodedata

    from generations import moderation

    cache = moderation._Marks()
    monkeypatch.setattr(moderation._Marks, "limit", 100)
    monkeypatch.setattr(moderation, "_MARKS", cache)
    hostile = "".join(chr(code) for code in range(0x4E00, 0x4E00 + 2000))  # CJK, no marks
    accents = "e\u0301" * 3 + "\u200b"
    folded = moderation._fold(hostile + accents)
    assert len(cache) == 100
    assert folded == unicodedata.normalize("NFKC", hostile).casefold() + "eee"
