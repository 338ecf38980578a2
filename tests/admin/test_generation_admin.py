"""The generation admin: list and detail, moderation actions, cancel, refund, re-check."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from accounts import ledger
from accounts.models import LedgerEntry
from generations.models import Generation
from tests.admin.actions import changelist, run_action
from tests.credits import numbers
from tests.factories import GenerationFactory

Moderation = Generation.Moderation


def with_uploaded_image(generation: Generation) -> Generation:
    """Give a generation an uploaded source image instead of its image URL."""
    generation.image.save("input.png", ContentFile(b"\x89PNG image-bytes"))
    Generation.objects.filter(pk=generation.pk).update(image_url="")
    generation.refresh_from_db()
    return generation


def audit_messages(obj) -> list[str]:
    return list(
        LogEntry.objects.filter(object_id=str(obj.pk)).values_list("change_message", flat=True)
    )


# --- List and detail ------------------------------------------------------------------------


def test_list_shows_owner_status_options_cost_and_thumbnail(admin_client_for, superuser, user):
    uploaded = with_uploaded_image(GenerationFactory(owner=user))
    GenerationFactory(owner=user, fal_request_id="req-abc", resolution="1080p")

    response = admin_client_for(superuser).get(changelist(Generation))

    assert response.status_code == 200
    body = response.content.decode()
    assert reverse("generation-image", args=[uploaded.pk]) in body
    assert user.username in body
    assert "8s · 1080p · 16:9 · audio" in body


@pytest.mark.parametrize("term", ["req-abc", "misty lake", "OWNER"])
def test_search_by_fal_request_id_prompt_and_owner(admin_client_for, superuser, term):
    from tests.factories import UserFactory

    owner = UserFactory(username="owner")
    found = GenerationFactory(owner=owner, fal_request_id="req-abc")
    other = GenerationFactory(prompt="A red kite", fal_request_id="req-zzz")

    response = admin_client_for(superuser).get(changelist(Generation), {"q": term})

    ids = {g.pk for g in response.context["cl"].result_list}
    assert found.pk in ids
    assert other.pk not in ids


def test_search_by_generation_id_and_by_nonsense(admin_client_for, superuser, user):
    found = GenerationFactory(owner=user)
    client = admin_client_for(superuser)

    by_id = client.get(changelist(Generation), {"q": str(found.pk)})
    nonsense = client.get(changelist(Generation), {"q": "not-a-uuid'; --"})

    assert [g.pk for g in by_id.context["cl"].result_list] == [found.pk]
    assert nonsense.status_code == 200


def test_filters_by_status_moderation_resolution_audio(admin_client_for, superuser, user):
    hidden = GenerationFactory(owner=user, moderation_state="hidden", moderation_reason="x")
    GenerationFactory(owner=user)

    response = admin_client_for(superuser).get(
        changelist(Generation),
        {
            "moderation_state__exact": "hidden",
            "resolution__exact": "720p",
            "generate_audio__exact": "1",
            "status__exact": "pending",
        },
    )

    assert [g.pk for g in response.context["cl"].result_list] == [hidden.pk]


def test_detail_plays_the_video_and_shows_fal_error_and_ledger(
    admin_client_for, superuser, paid_generation
):
    paid_generation.video.save("v.mp4", ContentFile(b"\x00\x00\x00\x18ftypmp42"))
    Generation.objects.filter(pk=paid_generation.pk).update(
        error_message="fal said: upstream hiccup", fal_request_id="req-777"
    )

    response = admin_client_for(superuser).get(
        reverse("admin:generations_generation_change", args=[paid_generation.pk])
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert f'<video src="{reverse("generation-video", args=[paid_generation.pk])}"' in body
    assert "fal said: upstream hiccup" in body
    assert "req-777" in body
    assert "ledger entries of this generation" in body.lower()
    assert body.count("Capture") >= 1 and "Hold" in body
    # Read-only: no save button, nothing to edit.
    assert 'name="_save"' not in body


def test_generations_cannot_be_added_changed_or_deleted(admin_client_for, superuser, user):
    generation = GenerationFactory(owner=user)
    client = admin_client_for(superuser)

    assert client.get(reverse("admin:generations_generation_add")).status_code == 403
    assert (
        client.get(reverse("admin:generations_generation_delete", args=[generation.pk])).status_code
        == 403
    )
    response = client.post(
        reverse("admin:generations_generation_change", args=[generation.pk]),
        {"status": "succeeded", "cost_credits": 1},
    )
    assert response.status_code == 403
    generation.refresh_from_db()
    assert (generation.status, generation.cost_credits) == ("pending", 320)


# --- Moderation -----------------------------------------------------------------------------


def test_hide_asks_for_a_reason_first(admin_client_for, moderator, user):
    generation = GenerationFactory(owner=user)

    page = run_action(admin_client_for(moderator), Generation, "hide", [generation])

    assert page.status_code == 200
    assert page.templates[0].name == "admin/action_reason.html"
    generation.refresh_from_db()
    assert generation.moderation_state == Moderation.VISIBLE


@pytest.mark.parametrize("reason", ["", "   "])
def test_hide_without_a_reason_changes_nothing(admin_client_for, moderator, user, reason):
    generation = GenerationFactory(owner=user)

    page = run_action(
        admin_client_for(moderator), Generation, "hide", [generation], apply="1", reason=reason
    )

    assert page.status_code == 200
    assert page.context["form"].errors["reason"]
    generation.refresh_from_db()
    assert generation.moderation_state == Moderation.VISIBLE
    assert audit_messages(generation) == []


def test_bulk_hide_hides_each_with_the_reason_and_records_it(admin_client_for, moderator, user):
    first, second = GenerationFactory(owner=user), GenerationFactory(owner=user)

    response = run_action(
        admin_client_for(moderator),
        Generation,
        "hide",
        [first, second],
        apply="1",
        reason="Graphic violence",
    )

    assert response.status_code == 302
    for generation in (first, second):
        generation.refresh_from_db()
        assert generation.moderation_state == Moderation.HIDDEN
        assert generation.moderation_reason == "Graphic violence"
        assert generation.moderated_by == moderator
        assert generation.moderated_at is not None
        assert audit_messages(generation) == ["Hidden by moderation: Graphic violence"]
        assert LogEntry.objects.get(object_id=str(generation.pk)).user == moderator


def test_flag_then_unhide(admin_client_for, moderator, user):
    generation = GenerationFactory(owner=user)
    client = admin_client_for(moderator)

    run_action(client, Generation, "flag", [generation], apply="1", reason="Check the hands")
    generation.refresh_from_db()
    assert (generation.moderation_state, generation.moderation_reason) == (
        Moderation.FLAGGED,
        "Check the hands",
    )

    run_action(client, Generation, "unhide", [generation], apply="1", reason="Looks fine")
    generation.refresh_from_db()
    assert (generation.moderation_state, generation.moderation_reason) == (Moderation.VISIBLE, "")
    assert audit_messages(generation) == [
        "Made visible again: Looks fine",
        "Flagged for review: Check the hands",
    ]


def test_flagging_a_hidden_generation_keeps_it_hidden(admin_client_for, moderator, user):
    generation = GenerationFactory(owner=user, moderation_state="hidden", moderation_reason="x")

    run_action(
        admin_client_for(moderator), Generation, "flag", [generation], apply="1", reason="again"
    )

    generation.refresh_from_db()
    assert (generation.moderation_state, generation.moderation_reason) == ("hidden", "x")


def test_hide_from_the_object_page_returns_to_it(admin_client_for, moderator, user):
    generation = GenerationFactory(owner=user)
    client = admin_client_for(moderator)
    detail = reverse("admin:generations_generation_change", args=[generation.pk])
    confirm = reverse("admin:generations_generation_object_action", args=[generation.pk, "hide"])

    assert confirm in client.get(detail).content.decode()
    page = client.get(confirm)
    assert page.status_code == 200 and page.context["from_object"]
    response = run_action(
        client, Generation, "hide", [generation], apply="1", reason="Spam", _from_object="1"
    )

    assert response.status_code == 302 and response.url == detail
    generation.refresh_from_db()
    assert generation.moderation_state == Moderation.HIDDEN


def test_hidden_media_is_not_served_to_the_owner_but_to_staff(client, superuser, user):
    generation = with_uploaded_image(GenerationFactory(owner=user, status="succeeded"))
    generation.video.save("v.mp4", ContentFile(b"video-bytes"))
    from generations import moderation

    client.force_login(user)
    assert client.get(reverse("generation-video", args=[generation.pk])).status_code == 200

    moderation.hide(generation=generation, actor=superuser, reason="Nudity")

    assert client.get(reverse("generation-video", args=[generation.pk])).status_code == 404
    assert client.get(reverse("generation-image", args=[generation.pk])).status_code == 404
    client.force_login(superuser)
    assert client.get(reverse("generation-video", args=[generation.pk])).status_code == 200
    assert client.get(reverse("generation-image", args=[generation.pk])).status_code == 200


# --- Cancel, refund, re-check -------------------------------------------------------------------


def test_cancel_releases_the_hold_and_records_the_reason(
    admin_client_for, moderator, held_generation, user
):
    assert numbers(user) == (1000, 320)

    response = run_action(
        admin_client_for(moderator),
        Generation,
        "cancel",
        [held_generation],
        apply="1",
        reason="Abusive prompt",
    )

    assert response.status_code == 302
    held_generation.refresh_from_db()
    assert held_generation.status == Generation.Status.CANCELED
    assert numbers(user) == (1000, 0)
    assert "Canceled by staff: Abusive prompt" in audit_messages(held_generation)
    assert ledger.broken_accounts() == []


def test_cancel_of_a_finished_generation_says_why_and_changes_nothing(
    admin_client_for, moderator, paid_generation, user
):
    response = run_action(
        admin_client_for(moderator),
        Generation,
        "cancel",
        [paid_generation],
        apply="1",
        reason="too late",
    )

    assert response.status_code == 302
    paid_generation.refresh_from_db()
    assert paid_generation.status == Generation.Status.SUCCEEDED
    assert numbers(user) == (680, 0)
    assert audit_messages(paid_generation) == []


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        (Generation.Status.PENDING, True),
        (Generation.Status.SUBMITTING, True),
        (Generation.Status.QUEUED, True),
        (Generation.Status.RUNNING, False),  # fal renders it: a cancel would fail
        (Generation.Status.SUCCEEDED, False),
    ],
)
def test_cancel_button_is_offered_only_on_cancelable_generations(
    admin_client_for, moderator, user, status, offered
):
    generation = GenerationFactory(owner=user, status=status)
    cancel_url = reverse(
        "admin:generations_generation_object_action", args=[generation.pk, "cancel"]
    )

    page = admin_client_for(moderator).get(
        reverse("admin:generations_generation_change", args=[generation.pk])
    )

    assert page.status_code == 200
    buttons = [url for url, _label in page.context["object_action_buttons"]]
    assert (cancel_url in buttons) is offered


def test_refund_gives_the_credits_back_once(admin_client_for, superuser, paid_generation, user):
    client = admin_client_for(superuser)
    assert numbers(user) == (680, 0)

    for _ in range(2):
        response = run_action(
            client, Generation, "refund", [paid_generation], apply="1", reason="Bad render"
        )
        assert response.status_code == 302

    assert numbers(user) == (1000, 0)
    refund = LedgerEntry.objects.get(generation=paid_generation, kind="refund")
    assert (refund.amount, refund.actor, refund.reason) == (320, superuser, "Bad render")
    assert audit_messages(paid_generation) == [
        f"Refunded 320 credits (ledger entry {refund.pk}): Bad render"
    ]
    assert ledger.broken_accounts() == []


def test_refund_needs_a_reason(admin_client_for, superuser, paid_generation, user):
    page = run_action(
        admin_client_for(superuser), Generation, "refund", [paid_generation], apply="1", reason=""
    )

    assert page.status_code == 200 and page.context["form"].errors
    assert numbers(user) == (680, 0)


def test_refund_of_an_unpaid_generation_is_refused(
    admin_client_for, superuser, held_generation, user
):
    run_action(
        admin_client_for(superuser),
        Generation,
        "refund",
        [held_generation],
        apply="1",
        reason="x",
    )

    assert numbers(user) == (1000, 320)
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    assert ledger.broken_accounts() == []


def test_recheck_asks_fal_now_and_settles(admin_client_for, moderator, user, settings):
    """The simulated fal backend (no FAL_KEY) answers from the request id: this one was
    submitted long ago, so it is done and the video is copied and captured."""
    settings.FAL_SIMULATED = True
    generation = GenerationFactory(
        owner=user,
        status=Generation.Status.RUNNING,
        fal_request_id="sim-ok-1000-abcdef012345",
        submitted_at=timezone.now(),
    )
    ledger.hold(generation=generation)

    response = run_action(admin_client_for(moderator), Generation, "recheck", [generation])

    assert response.status_code == 302
    generation.refresh_from_db()
    assert generation.status == Generation.Status.SUCCEEDED
    assert numbers(user) == (680, 0)
    assert audit_messages(generation) == ["Re-checked with fal: running -> succeeded"]
    assert ledger.broken_accounts() == []


# --- Permissions ----------------------------------------------------------------------------


def test_moderator_cannot_refund(admin_client_for, moderator, paid_generation, user):
    client = admin_client_for(moderator)

    response = run_action(
        client, Generation, "refund", [paid_generation], apply="1", reason="please"
    )

    assert numbers(user) == (680, 0)
    assert response.status_code in (200, 302)
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    actions = client.get(changelist(Generation)).context["action_form"].fields["action"]
    assert "refund" not in dict(actions.choices)
    assert {"hide", "unhide", "flag", "cancel", "recheck"} <= set(dict(actions.choices))


def test_normal_user_has_no_admin_access(admin_client_for, user, other_user):
    generation = GenerationFactory(owner=other_user)
    client = admin_client_for(user)

    response = client.get(changelist(Generation))
    assert response.status_code == 302 and "/login/" in response.url
    run_action(client, Generation, "hide", [generation], apply="1", reason="mine now")
    generation.refresh_from_db()
    assert generation.moderation_state == Moderation.VISIBLE


def test_staff_without_permissions_cannot_moderate(admin_client_for, user):
    from tests.factories import UserFactory

    bare_staff = UserFactory(is_staff=True)
    generation = GenerationFactory(owner=user)
    client = admin_client_for(bare_staff)

    assert client.get(changelist(Generation)).status_code == 403
    run_action(client, Generation, "hide", [generation], apply="1", reason="x")
    generation.refresh_from_db()
    assert generation.moderation_state == Moderation.VISIBLE
