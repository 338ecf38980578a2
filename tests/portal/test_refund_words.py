"""Honest refund words (issue 14): every page that tells what a failed or canceled video
costs (the landing page, the studio's price box, a video in progress, the 500 page) says
what staff's refund policies do, never "costs nothing" while a policy charges."""

from __future__ import annotations

import re
import time

import pytest
from django.test import RequestFactory
from django.urls import reverse

from generations import refund_words
from generations.models import Generation, RefundPolicy
from generations.refund_words import failed_video_cost
from tests.factories import GenerationFactory
from veoproject.errors import server_error

pytestmark = pytest.mark.django_db

Reason = RefundPolicy.Reason
Action = RefundPolicy.Action

NOTHING = "A video that fails or is canceled costs nothing."
REFUSED_FULL = "one refused by the content rules, which costs its full price"
REFUSED_SHARE = "one refused by the content rules, which costs 30% of its price"
CANCELED_FULL = "one you cancel after it started rendering, which costs its full price"
CANCELED_SHARE = "one you cancel after it started rendering, which costs 50% of its price"
EXCEPT = "A video that fails or is canceled costs nothing, except"

# (content policy, canceled after start, the sentence); "none": no policy row (a refund).
SENTENCES = [
    ("none", "none", NOTHING),
    ("refund", "refund", NOTHING),
    ("charge", "none", f"{EXCEPT} {REFUSED_FULL}."),
    ("share", "refund", f"{EXCEPT} {REFUSED_SHARE}."),
    ("none", "charge", f"{EXCEPT} {CANCELED_FULL}."),
    ("refund", "share", f"{EXCEPT} {CANCELED_SHARE}."),
    ("charge", "charge", f"{EXCEPT} {REFUSED_FULL}, and {CANCELED_FULL}."),
    ("share", "share", f"{EXCEPT} {REFUSED_SHARE}, and {CANCELED_SHARE}."),
    ("charge", "share", f"{EXCEPT} {REFUSED_FULL}, and {CANCELED_SHARE}."),
]
# A sentence that is false as soon as any policy charges.
FALSE_WHEN_CHARGING = (
    "a failed or canceled video costs nothing.",
    "a video that fails costs nothing.",
    "spent only if",
)


def set_policies(content: str, canceled: str) -> None:
    RefundPolicy.objects.all().delete()
    for reason, name, percent in (
        (Reason.CONTENT_POLICY, content, 30),
        (Reason.CANCELED_AFTER_START, canceled, 50),
    ):
        if name != "none":
            RefundPolicy.objects.create(
                reason=reason,
                action=name,
                share_percent=percent if name == Action.SHARE else None,
            )


def text(response) -> str:
    """The page's words, tags dropped and white space folded."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def assert_honest(page: str, sentence: str) -> None:
    assert sentence in page
    if sentence != NOTHING:
        for claim in FALSE_WHEN_CHARGING:
            assert claim not in page.lower(), claim


@pytest.mark.parametrize(("content", "canceled", "sentence"), SENTENCES)
def test_the_sentence_follows_the_refund_policies(content, canceled, sentence):
    set_policies(content, canceled)
    assert failed_video_cost() == sentence


@pytest.mark.parametrize(("content", "canceled", "sentence"), SENTENCES)
def test_landing_page_says_what_a_failed_video_costs(client, content, canceled, sentence):
    set_policies(content, canceled)
    response = client.get(reverse("studio"))
    assert response.templates[0].name == "landing.html"
    assert_honest(text(response), sentence)


@pytest.mark.parametrize(("content", "canceled", "sentence"), SENTENCES)
def test_price_box_says_what_a_failed_video_costs(client, user, content, canceled, sentence):
    set_policies(content, canceled)
    client.force_login(user)
    studio = client.get(reverse("studio"))
    assert 'data-testid="price"' in studio.content.decode()
    assert_honest(text(studio), sentence)
    # The live price box the studio swaps in as options change.
    preview = client.get(
        reverse("quote-preview"),
        {"duration": "8s", "resolution": "720p", "aspect_ratio": "16:9", "generate_audio": "on"},
    )
    assert 'data-testid="price-credits"' in preview.content.decode()
    assert_honest(text(preview), sentence)


@pytest.mark.parametrize(("content", "canceled", "sentence"), SENTENCES)
@pytest.mark.parametrize("status", [Generation.Status.QUEUED, Generation.Status.RUNNING])
def test_status_of_a_video_in_progress_says_what_it_would_cost(
    client, user, status, content, canceled, sentence
):
    set_policies(content, canceled)
    generation = GenerationFactory(owner=user, status=status)
    client.force_login(user)
    for url in (
        reverse("generation-detail", args=[generation.pk]),
        reverse("generation-status-partial", args=[generation.pk]) + "?for=detail",
    ):
        page = text(client.get(url))
        assert "320 credits are held" in page
        assert_honest(page, sentence)


@pytest.mark.parametrize(("content", "canceled", "sentence"), SENTENCES)
def test_server_error_page_says_what_a_failed_video_costs(
    client, content, canceled, sentence, django_assert_num_queries
):
    """The 500 page reads no database (it may be what failed): it says the sentence from
    the policies the site read for its last page."""
    set_policies(content, canceled)
    client.get(reverse("studio"))
    with django_assert_num_queries(0):
        response = server_error(RequestFactory().get("/videos/"))
    assert response.status_code == 500
    assert_honest(text(response), sentence)


def test_server_error_page_promises_nothing_about_costs_it_does_not_know(
    client, django_assert_num_queries
):
    """Policies not read in this process lately (or never): no sentence at all, rather
    than one that may be false."""
    set_policies("none", "none")
    client.get(reverse("studio"))
    refund_words.forget()
    with django_assert_num_queries(0):
        response = server_error(RequestFactory().get("/videos/"))
    page = text(response)
    assert "Something went wrong on our side" in page
    assert "costs nothing" not in page


def test_server_error_page_forgets_policies_read_too_long_ago(client, monkeypatch):
    set_policies("none", "none")
    client.get(reverse("studio"))
    assert NOTHING in text(server_error(RequestFactory().get("/videos/")))
    later = time.monotonic() + refund_words.KNOWN_FOR + 1
    monkeypatch.setattr(refund_words, "monotonic", lambda: later)  # the clock: our edge
    assert "costs nothing" not in text(server_error(RequestFactory().get("/videos/")))
