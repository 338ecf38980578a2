"""My videos, a generation's page, its polling partial and cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import CreditAccount
from generations import services
from tests.factories import GenerationFactory
from tests.portal.conftest import PARAMS

pytestmark = pytest.mark.django_db


def html(response) -> str:
    return response.content.decode()


# --- Gallery ----------------------------------------------------------------------------------


def test_gallery_shows_my_videos_newest_first_and_nobody_elses(logged_in, user, other_user):
    older = GenerationFactory(owner=user, prompt="Older: a fox in snow")
    newer = GenerationFactory(owner=user, prompt="Newer: a kite at the beach")
    GenerationFactory(owner=other_user, prompt="Someone else's secret")
    page = html(logged_in.get(reverse("generation-list")))
    assert page.index("Newer: a kite") < page.index("Older: a fox")
    assert "Someone else" not in page
    assert {g.pk for g in logged_in.get(reverse("generation-list")).context["generations"]} == {
        older.pk,
        newer.pk,
    }


def test_gallery_is_paginated(logged_in, user):
    GenerationFactory.create_batch(13, owner=user)
    first = logged_in.get(reverse("generation-list"))
    second = logged_in.get(reverse("generation-list"), {"page": 2})
    assert len(first.context["generations"]) == 12
    assert len(second.context["generations"]) == 1
    assert "Page 1 of 2" in html(first)
    assert "My videos (page 2) · Veo Studio" in html(second)


def test_gallery_filters_by_status(logged_in, user):
    GenerationFactory(owner=user, status="failed", prompt="It failed")
    GenerationFactory(owner=user, status="submitting", prompt="Still pending")
    page = html(logged_in.get(reverse("generation-list"), {"status": "active"}))
    assert "Still pending" in page and "It failed" not in page
    unknown_filter = logged_in.get(reverse("generation-list"), {"status": "bogus"})
    assert len(unknown_filter.context["generations"]) == 2


def test_unfinished_cards_poll_their_partial_and_final_cards_do_not(logged_in, user):
    queued = GenerationFactory(owner=user, status="queued", fal_queue_position=3)
    done = GenerationFactory(owner=user, status="canceled")
    page = html(logged_in.get(reverse("generation-list")))
    partial_url = reverse("generation-status-partial", args=[queued.pk])
    assert f'hx-get="{partial_url}" hx-trigger="every 2s"' in page
    assert reverse("generation-status-partial", args=[done.pk]) not in page
    assert "3 ahead in line" in page


def test_status_partial_returns_the_card_with_elapsed_time_and_updated_credits(logged_in, user):
    generation = GenerationFactory(
        owner=user, status="running", started_at=timezone.now() - timedelta(seconds=75)
    )
    response = logged_in.get(reverse("generation-status-partial", args=[generation.pk]))
    page = html(response)
    assert page.startswith('<article class="card"')
    assert "Rendering 1:1" in page  # 1:15, give or take the test's own second
    assert 'id="header-credits"' in page and 'hx-swap-oob="true"' in page
    assert "<html" not in page


def test_status_partial_stops_polling_once_final(logged_in, user, run_generation):
    generation = run_generation(user)
    assert generation.status == "succeeded"
    page = html(logged_in.get(reverse("generation-status-partial", args=[generation.pk])))
    assert "hx-trigger" not in page.split('id="header-credits"')[0]
    assert reverse("generation-video", args=[generation.pk]) in page


def test_status_partial_for_the_detail_page_reloads_it_once_final(logged_in, user, run_generation):
    done = run_generation(user)
    response = logged_in.get(
        reverse("generation-status-partial", args=[done.pk]), {"for": "detail"}
    )
    assert response.headers["HX-Refresh"] == "true"
    assert 'id="status-panel"' in html(response)
    running = GenerationFactory(owner=user, status="running")
    url = reverse("generation-status-partial", args=[running.pk])
    assert "HX-Refresh" not in logged_in.get(url, {"for": "detail"}).headers


def test_failed_card_shows_the_error_and_that_the_credits_came_back(
    logged_in, user, run_generation
):
    generation = run_generation(user, prompt="A duel at noon [fal:content_policy]")
    assert generation.status == "failed"
    assert CreditAccount.objects.get(user=user).available == 1000
    page = html(logged_in.get(reverse("generation-list")))
    assert "refused by the content rules" in page and "flagged by a content checker" not in page
    assert "Nothing was charged: 320 credits returned." in page


# --- Other people's generations --------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["generation-detail", "generation-status-partial", "generation-cancel"]
)
def test_another_users_generation_is_a_404(logged_in, other_user, name):
    theirs = GenerationFactory(owner=other_user, status="queued")
    url = reverse(name, args=[theirs.pk])
    response = logged_in.post(url) if name == "generation-cancel" else logged_in.get(url)
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "queued"


def test_anonymous_requests_for_a_generation_go_to_login(client, user):
    generation = GenerationFactory(owner=user)
    for name in ("generation-detail", "generation-status-partial"):
        response = client.get(reverse(name, args=[generation.pk]))
        assert response.status_code == 302 and response.url.startswith(reverse("login"))


# --- Generation page --------------------------------------------------------------------------


def test_generation_page_has_the_player_download_parameters_and_ledger(
    logged_in, user, run_generation
):
    generation = run_generation(user, duration="6s", generate_audio=False)
    response = logged_in.get(reverse("generation-detail", args=[generation.pk]))
    page = html(response)
    video_url = reverse("generation-video", args=[generation.pk])
    assert f'<video controls playsinline preload="metadata" src="{video_url}"' in page
    assert f'href="{video_url}" download=' in page
    assert [e.kind for e in response.context["entries"]] == ["hold", "capture"]
    assert "120 credits (spent)" in page  # 6 s x 20 credits/s without audio
    assert "6 seconds" in page and "Off" in page and generation.fal_request_id not in page
    assert "Finished" in page
    # The video itself streams to its owner.
    assert logged_in.get(video_url).status_code == 200


def test_generation_hidden_by_moderation_shows_the_reason_and_no_media(logged_in, user):
    generation = GenerationFactory(
        owner=user,
        status="succeeded",
        video="private/videos/x.mp4",
        moderation_state="hidden",
        moderation_reason="Depicts a real person without consent.",
    )
    detail = html(logged_in.get(reverse("generation-detail", args=[generation.pk])))
    assert "Removed by moderation" in detail
    assert "Depicts a real person without consent." in detail
    assert "<video" not in detail
    assert reverse("generation-video", args=[generation.pk]) not in detail
    card = html(logged_in.get(reverse("generation-list")))
    assert "Removed by moderation" in card and "<video" not in card


def test_unfinished_generation_page_polls_its_status_panel(logged_in, user):
    generation = GenerationFactory(owner=user, status="pending")
    page = html(logged_in.get(reverse("generation-detail", args=[generation.pk])))
    url = reverse("generation-status-partial", args=[generation.pk])
    assert f'hx-get="{url}?for=detail"' in page
    assert "The video appears here when it is ready." in page


# --- Cancel -----------------------------------------------------------------------------------


def test_cancel_of_a_pending_generation_returns_its_credits(logged_in, user):
    generation = services.accept(user=user, params=PARAMS).generation
    assert CreditAccount.objects.get(user=user).available == 680
    response = logged_in.post(
        reverse("generation-cancel", args=[generation.pk]),
        {"next": reverse("generation-list")},
        follow=True,
    )
    generation.refresh_from_db()
    assert generation.status == "canceled"
    assert CreditAccount.objects.get(user=user).available == 1000
    assert response.redirect_chain[-1][0] == reverse("generation-list")
    assert "Canceled. The 320 credits held for it are back." in html(response)


def test_cancel_of_a_running_generation_is_refused_with_a_message(logged_in, user):
    generation = GenerationFactory(owner=user, status="running")
    response = logged_in.post(reverse("generation-cancel", args=[generation.pk]), follow=True)
    generation.refresh_from_db()
    assert generation.status == "running"
    assert "Could not cancel" in html(response)
    assert response.redirect_chain[-1][0] == reverse("generation-detail", args=[generation.pk])


def test_cancel_ignores_a_foreign_next_and_refuses_get(logged_in, user):
    generation = services.accept(user=user, params=PARAMS).generation
    url = reverse("generation-cancel", args=[generation.pk])
    assert logged_in.get(url).status_code == 405
    response = logged_in.post(url, {"next": "https://evil.example/"})
    assert response.url == reverse("generation-detail", args=[generation.pk])
