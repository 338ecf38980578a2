"""A generation's life through the services, with the simulated fal backend and tasks
run inline (django-q2 sync mode) at commit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import ledger
from accounts.models import CreditAccount
from generations import services
from generations.models import BlockedTerm, Generation
from tests.credits import kinds
from tests.factories import REQUEST_BODY, UserFactory, image_upload
from veoproject.exceptions import (
    IdempotencyKeyReused,
    InsufficientCredits,
    InvalidTransition,
    LimitExceeded,
    ValidationFailed,
)

pytestmark = pytest.mark.django_db


def account(user) -> CreditAccount:
    return CreditAccount.objects.get(user=user)


def sweep_now() -> None:
    """Run a sweep as if every in-flight generation were due (the clock is not ours)."""
    Generation.objects.in_flight().update(next_poll_at=None)
    services.sweep()


def test_accept_holds_the_quoted_cost_and_leaves_it_pending(user):
    result = services.accept(user=user, params=REQUEST_BODY)
    generation = result.generation
    assert result.replayed is False
    assert generation.status == "pending"
    assert generation.cost_credits == 320  # 8 s x 40 credits, 1080p with audio
    assert (account(user).balance, account(user).reserved) == (1000, 320)
    assert kinds(generation) == ["hold"]


def test_accepted_generation_runs_to_success_and_captures_exactly_once(
    user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.accept(user=user, params=REQUEST_BODY).generation
    sweep_now()  # simulated fal finishes at once; the video is copied inline
    generation.refresh_from_db()
    assert generation.status == "succeeded"
    assert generation.video.name.endswith(f"{generation.pk}.mp4")
    assert generation.video_bytes and generation.video_bytes > 1000
    assert generation.fal_request_id.startswith("sim-ok-")
    assert (account(user).balance, account(user).reserved) == (680, 0)
    assert kinds(generation) == ["hold", "capture"]
    # Late duplicates change nothing.
    services.fail(generation_id=generation.pk, code="timeout", message="late")
    services.apply_webhook(
        generation_id=generation.pk,
        payload={"request_id": generation.fal_request_id, "status": "OK", "payload": {}},
        request_id=generation.fal_request_id,
    )
    services.finish(generation_id=generation.pk)
    assert kinds(generation) == ["hold", "capture"]
    assert ledger.broken_accounts() == []


def test_failed_job_releases_hold_and_keeps_fals_message(user, django_capture_on_commit_callbacks):
    params = {**REQUEST_BODY, "prompt": "A duel at noon [fal:content_policy]"}
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.accept(user=user, params=params).generation
    sweep_now()
    generation.refresh_from_db()
    assert generation.status == "failed"
    assert generation.error_code == "content_policy"
    assert "flagged" in generation.error_message
    assert (account(user).balance, account(user).reserved) == (1000, 0)
    assert kinds(generation) == ["hold", "release"]


def test_runner_error_fails_as_upstream_error(user, django_capture_on_commit_callbacks):
    params = {**REQUEST_BODY, "prompt": "Storm clouds [fal:runner_error]"}
    with django_capture_on_commit_callbacks(execute=True):
        generation = services.accept(user=user, params=params).generation
    sweep_now()
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "upstream_error")
    assert account(user).available == 1000


def test_cancel_before_submit_releases_at_once(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    services.cancel(generation=generation)
    generation.refresh_from_db()
    assert generation.status == "canceled"
    assert account(user).reserved == 0
    assert kinds(generation) == ["hold", "release"]
    with pytest.raises(InvalidTransition):
        services.cancel(generation=generation)
    assert kinds(generation) == ["hold", "release"]


def test_running_generation_cannot_be_canceled(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    Generation.objects.filter(pk=generation.pk).update(status="running", fal_request_id="x")
    with pytest.raises(InvalidTransition):
        services.cancel(generation=generation)
    assert account(user).reserved == 320


def test_insufficient_credits_is_402_and_nothing_is_held(db):
    poor = UserFactory(credits=100)
    with pytest.raises(InsufficientCredits) as info:
        services.accept(user=poor, params=REQUEST_BODY)
    assert (info.value.required, info.value.available) == (320, 100)
    assert not Generation.objects.filter(owner=poor).exists()
    assert (account(poor).balance, account(poor).reserved) == (100, 0)


def test_idempotent_replay_returns_the_first_generation_and_holds_once(user):
    first = services.accept(user=user, params=REQUEST_BODY, idempotency_key="order-42")
    again = services.accept(user=user, params=dict(REQUEST_BODY), idempotency_key="order-42")
    assert again.replayed is True
    assert again.generation.pk == first.generation.pk
    assert account(user).reserved == 320
    with pytest.raises(IdempotencyKeyReused):
        services.accept(
            user=user, params={**REQUEST_BODY, "duration": "4s"}, idempotency_key="order-42"
        )


def test_idempotency_keys_are_per_user(user, other_user):
    mine = services.accept(user=user, params=REQUEST_BODY, idempotency_key="same").generation
    theirs = services.accept(
        user=other_user, params=REQUEST_BODY, idempotency_key="same"
    ).generation
    assert mine.pk != theirs.pk


def test_in_flight_cap(user, settings):
    settings.MAX_IN_FLIGHT_PER_USER = 2
    services.accept(user=user, params={**REQUEST_BODY, "duration": "4s"})
    services.accept(user=user, params={**REQUEST_BODY, "duration": "4s"})
    with pytest.raises(LimitExceeded) as info:
        services.accept(user=user, params={**REQUEST_BODY, "duration": "4s"})
    assert info.value.retry_after > 0
    settings.MAX_IN_FLIGHT_PER_USER = 0  # lifted
    services.accept(user=user, params={**REQUEST_BODY, "duration": "4s"})


def test_blocked_term_is_refused_and_nothing_charged(user):
    BlockedTerm.objects.create(term="forbidden thing")
    with pytest.raises(ValidationFailed) as info:
        services.accept(user=user, params={**REQUEST_BODY, "prompt": "A FORBIDDEN   Thing at dusk"})
    assert info.value.code == "blocked_term"
    assert account(user).reserved == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 2501}, "prompt"),
        ({"prompt": "nul\x00byte"}, "prompt"),
        ({"duration": "10s"}, "duration"),
        ({"duration": "-4s"}, "duration"),
        ({"resolution": "4k"}, "resolution"),  # no active price
        ({"aspect_ratio": "1:1"}, "aspect_ratio"),
        ({"generate_audio": "maybe"}, "generate_audio"),
        ({"image_url": "http://images.example.com/a.jpg"}, "image_url"),
        ({"image_url": "file:///etc/passwd"}, "image_url"),
        ({"image_url": "data:image/png;base64,AAAA"}, "image_url"),
        ({"image_url": "https://127.0.0.1/a.jpg"}, "image_url"),
        ({"image_url": "https://10.0.0.8/a.jpg"}, "image_url"),
        ({"image_url": "https://[::1]/a.jpg"}, "image_url"),
        ({"image_url": "https://localhost/a.jpg"}, "image_url"),
        ({"image_url": "https://metadata.internal/a.jpg"}, "image_url"),
        ({"image_url": ""}, "image"),
    ],
)
def test_invalid_params_are_refused_with_field_errors(user, change, field):
    with pytest.raises(ValidationFailed) as info:
        services.accept(user=user, params={**REQUEST_BODY, **change})
    assert field in info.value.fields
    assert account(user).reserved == 0


def test_prompt_reaches_fal_exactly_as_written(user):
    prompt = "  Ünïcødé 🌊 «quotes» \n second line  "
    generation = services.accept(user=user, params={**REQUEST_BODY, "prompt": prompt}).generation
    assert services.fal_arguments(generation)["prompt"] == prompt


def test_uploaded_image_is_checked_by_decoding_it(user):
    generation = services.accept(
        user=user, params={**REQUEST_BODY, "image_url": ""}, image_file=image_upload()
    ).generation
    assert generation.image.name.startswith(f"private/inputs/{user.pk}/")
    # It goes to fal's storage (here the simulated one), never inline as a data: URI.
    assert services.fal_arguments(generation)["image_url"].startswith("simulated:uploads/")


def test_signed_image_token_names_its_generation_only(user):
    # The signed URL is the fallback when fal's storage is down (tests/generations/
    # test_fal_upload.py); its token must resolve to its generation and nothing else.
    generation = services.accept(
        user=user, params={**REQUEST_BODY, "image_url": ""}, image_file=image_upload()
    ).generation
    token = services.signed_image_token(generation)
    assert services.generation_for_signed_image(token) == generation
    assert services.generation_for_signed_image(token + "x") is None


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (lambda: image_upload(size=(640, 360)), "720p"),
        (lambda: image_upload(fmt="GIF", name="a.jpg"), "JPEG, PNG or WebP"),
        (
            lambda: __import__(
                "django.core.files.uploadedfile", fromlist=["SimpleUploadedFile"]
            ).SimpleUploadedFile("evil.jpg", b"<?php system($_GET['c']); ?>", "image/jpeg"),
            "not a readable",
        ),
    ],
)
def test_bad_uploads_are_refused_with_a_clear_message(user, upload, message):
    with pytest.raises(ValidationFailed) as info:
        services.accept(user=user, params={**REQUEST_BODY, "image_url": ""}, image_file=upload())
    assert message in " ".join(info.value.fields["image"])
    assert account(user).reserved == 0


def test_decompression_bomb_is_refused(user, settings):
    settings.IMAGE_MAX_PIXELS = 1280 * 720 - 1
    with pytest.raises(ValidationFailed) as info:
        services.accept(
            user=user, params={**REQUEST_BODY, "image_url": ""}, image_file=image_upload()
        )
    assert "too many pixels" in " ".join(info.value.fields["image"])


def test_overdue_generation_is_reconciled_failed_and_released(user):
    params = {**REQUEST_BODY, "prompt": "Forever rendering [fal:never]"}
    generation = services.accept(user=user, params=params).generation
    services.submit(generation_id=generation.pk)
    Generation.objects.filter(pk=generation.pk).update(
        deadline_at=timezone.now() - timedelta(seconds=1), next_poll_at=None
    )
    services.sweep()
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == ("failed", "timeout")
    assert account(user).reserved == 0
    assert ledger.broken_accounts() == []


def test_submit_twice_sends_one_job(user):
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    first_request = generation.fal_request_id
    services.submit(generation_id=generation.pk)
    generation.refresh_from_db()
    assert generation.fal_request_id == first_request
    assert (generation.status, generation.fal_submit_count, generation.attempts) == ("queued", 1, 1)


def test_sweep_dispatches_a_lost_submit(user, django_capture_on_commit_callbacks):
    # The enqueue was lost (e.g. Redis crashed): the sweep submits after the grace period.
    generation = services.accept(user=user, params=REQUEST_BODY).generation
    Generation.objects.filter(pk=generation.pk).update(next_poll_at=timezone.now())
    services.sweep()
    generation.refresh_from_db()
    assert generation.status in ("queued", "running", "succeeded")
    assert generation.fal_request_id
