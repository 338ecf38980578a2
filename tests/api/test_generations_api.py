from __future__ import annotations

import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.models import LedgerEntry
from generations import wording
from generations.models import BlockedTerm, Generation
from tests.credits import numbers
from tests.factories import GenerationFactory, UserFactory, image_upload

GENERATIONS = "/api/v1/generations/"
QUOTE = "/api/v1/generations/quote/"


def _png(width: int = 1280, height: int = 720) -> SimpleUploadedFile:
    return image_upload((width, height), fmt="PNG", name="frame.png", content_type="image/png")


def _holds(user) -> int:
    return LedgerEntry.objects.filter(account__user=user, kind="hold").count()


# --- Create ---------------------------------------------------------------------------------


def test_create_from_image_url_holds_the_quoted_cost(api, user, valid_body):
    response = api.post(GENERATIONS, valid_body, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending"
    assert body["cost_credits"] == 320
    assert body["image_url"] == valid_body["image_url"]
    assert body["video_url"] is None and body["error"] is None
    assert body["moderation"] == {"state": "visible", "reason": None}
    for field in ("prompt", "aspect_ratio", "duration", "resolution", "generate_audio"):
        assert body[field] == valid_body[field]
    generation = Generation.objects.get(pk=body["id"])
    assert generation.owner == user
    assert numbers(user) == (1000, 320)


def test_create_runs_on_to_the_fal_queue(api, valid_body, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(GENERATIONS, valid_body, format="json")
    detail = api.get(f"{GENERATIONS}{response.json()['id']}/").json()
    assert detail["status"] in ("queued", "running")


def test_create_applies_fals_defaults(api, user):
    body = {"prompt": "Waves", "image_url": "https://images.example.com/sea.jpg"}
    created = api.post(GENERATIONS, body, format="json").json()
    assert (created["aspect_ratio"], created["duration"], created["resolution"]) == (
        "16:9",
        "8s",
        "720p",
    )
    assert created["generate_audio"] is True


def test_create_keeps_the_prompt_exactly(api, valid_body):
    prompt = "  Ünïcödé 🎬 — «quotes»\nsecond line  "
    created = api.post(GENERATIONS, {**valid_body, "prompt": prompt}, format="json").json()
    assert Generation.objects.get(pk=created["id"]).prompt == prompt


def test_create_with_multipart_image_upload(api, user):
    response = api.post(
        GENERATIONS,
        {
            "prompt": "The city wakes up",
            "image": _png(),
            "aspect_ratio": "16:9",
            "duration": "4s",
            "resolution": "720p",
            "generate_audio": "false",
        },
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["generate_audio"] is False
    assert body["cost_credits"] == 80
    assert body["image_url"] == f"http://testserver/media/generations/{body['id']}/image"
    image = api.get(body["image_url"])
    assert image.status_code == 200
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")


def test_multipart_without_generate_audio_means_fals_default(api):
    response = api.post(
        GENERATIONS,
        {"prompt": "x", "image_url": "https://images.example.com/a.jpg"},
        format="multipart",
    )
    assert response.status_code == 201
    assert response.json()["generate_audio"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 2501}, "prompt"),
        ({"prompt": "bad \x00 byte"}, "prompt"),
        ({"prompt": ["a", "list"]}, "prompt"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"duration": "10s"}, "duration"),
        ({"duration": 8}, "duration"),
        ({"resolution": "4k"}, "resolution"),
        ({"resolution": "480p"}, "resolution"),
        ({"generate_audio": "maybe"}, "generate_audio"),
        ({"generate_audio": None}, "generate_audio"),
        ({"image_url": "not a url"}, "image_url"),
        ({"image_url": "http://images.example.com/a.jpg"}, "image_url"),
        ({"image_url": "https://127.0.0.1/a.jpg"}, "image_url"),
        ({"image_url": ""}, "image"),
        ({"callback_url": "ftp://example.com/cb"}, "callback_url"),
    ],
)
def test_create_validation_errors_hold_nothing(api, user, valid_body, change, field):
    response = api.post(GENERATIONS, {**valid_body, **change}, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert not Generation.objects.exists()
    assert numbers(user) == (1000, 0)


def test_create_rejects_an_image_and_an_image_url_together(api, valid_body):
    response = api.post(GENERATIONS, {**valid_body, "image": _png()}, format="multipart")
    assert response.status_code == 400
    assert "image_url" in response.json()["error"]["fields"]


def test_create_rejects_a_file_that_is_not_an_image(api, valid_body):
    body = {k: v for k, v in valid_body.items() if k != "image_url"}
    fake = ContentFile(b"MZ\x90\x00 not an image", name="photo.png")
    response = api.post(GENERATIONS, {**body, "image": fake}, format="multipart")
    assert response.status_code == 400
    assert "image" in response.json()["error"]["fields"]
    assert not Generation.objects.exists()


def test_create_rejects_a_small_image(api, valid_body):
    body = {k: v for k, v in valid_body.items() if k != "image_url"}
    response = api.post(GENERATIONS, {**body, "image": _png(320, 180)}, format="multipart")
    assert response.status_code == 400
    assert "image" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "callback_url",
    [
        "http://127.0.0.1:9000/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
    ],
)
def test_create_refuses_private_callback_urls(api, valid_body, settings, callback_url):
    settings.PRIVATE_URLS_ALLOWED = False
    response = api.post(GENERATIONS, {**valid_body, "callback_url": callback_url}, format="json")
    assert response.status_code == 400
    assert "callback_url" in response.json()["error"]["fields"]
    assert not Generation.objects.exists()


def test_create_with_a_blocked_term_is_refused(api, user, valid_body):
    BlockedTerm.objects.create(term="forbidden thing")
    body = {**valid_body, "prompt": "A FORBIDDEN   thing at dawn"}
    response = api.post(GENERATIONS, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "blocked_term"
    assert numbers(user) == (1000, 0)


def test_create_malformed_json_is_a_parse_error(api):
    response = api.post(GENERATIONS, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_create_unsupported_media_type(api):
    response = api.post(GENERATIONS, data="<xml/>", content_type="application/xml")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_create_without_credentials_is_401(db, valid_body):
    response = APIClient().post(GENERATIONS, valid_body, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Generation.objects.exists()


def test_insufficient_credits_is_402_and_holds_nothing(db, bearer_client, valid_body):
    poor = UserFactory(credits=100)
    response = bearer_client(poor).post(GENERATIONS, valid_body, format="json")
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_credits"
    assert (error["required"], error["available"]) == (320, 100)
    assert not Generation.objects.exists()
    assert numbers(poor) == (100, 0)
    assert _holds(poor) == 0


# --- Idempotency ----------------------------------------------------------------------------


def test_idempotent_replay_returns_the_first_generation_and_holds_once(api, user, valid_body):
    first = api.post(GENERATIONS, valid_body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    again = api.post(GENERATIONS, valid_body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Generation.objects.count() == 1
    assert _holds(user) == 1
    assert numbers(user) == (1000, 320)


def test_same_key_with_a_different_body_is_422(api, user, valid_body):
    api.post(GENERATIONS, valid_body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    response = api.post(
        GENERATIONS,
        {**valid_body, "duration": "4s"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="order-1",
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert _holds(user) == 1


def test_idempotency_keys_are_per_user(api, user, other_user, bearer_client, valid_body):
    mine = api.post(GENERATIONS, valid_body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    theirs = bearer_client(other_user).post(
        GENERATIONS, valid_body, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert theirs.json()["id"] != mine.json()["id"]


def test_without_a_key_each_request_is_a_new_generation(api, user, valid_body):
    api.post(GENERATIONS, valid_body, format="json")
    api.post(GENERATIONS, valid_body, format="json")
    assert _holds(user) == 2


def test_an_oversized_idempotency_key_is_refused(api, user, valid_body):
    response = api.post(GENERATIONS, valid_body, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400
    assert not Generation.objects.exists()


# --- Throttling and the in-flight cap --------------------------------------------------------


def test_create_rate_is_throttled_with_retry_after(api, settings, valid_body):
    settings.API_CREATE_RATE = "2/min"
    settings.MAX_IN_FLIGHT_PER_USER = 0
    statuses = [api.post(GENERATIONS, valid_body, format="json").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    response = api.post(GENERATIONS, valid_body, format="json")
    assert response.json()["error"]["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60
    assert Generation.objects.count() == 2


def test_create_throttle_is_per_user(api, other_user, bearer_client, settings, valid_body):
    settings.API_CREATE_RATE = "1/min"
    assert api.post(GENERATIONS, valid_body, format="json").status_code == 201
    other = bearer_client(other_user)
    assert other.post(GENERATIONS, valid_body, format="json").status_code == 201


@pytest.mark.parametrize("rate", [None, "", "0"])
def test_an_empty_or_zero_create_rate_lifts_the_throttle(api, settings, valid_body, rate):
    settings.API_CREATE_RATE = rate
    settings.MAX_IN_FLIGHT_PER_USER = 0
    statuses = {api.post(GENERATIONS, valid_body, format="json").status_code for _ in range(3)}
    assert statuses == {201}


def test_read_rate_is_throttled(api, settings):
    settings.API_READ_RATE = "2/min"
    statuses = [api.get(GENERATIONS).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_in_flight_cap_is_429_with_retry_after_and_holds_nothing(api, user, settings, valid_body):
    settings.MAX_IN_FLIGHT_PER_USER = 2
    for _ in range(2):
        assert api.post(GENERATIONS, valid_body, format="json").status_code == 201
    response = api.post(GENERATIONS, valid_body, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "too_many_in_flight"
    assert int(response["Retry-After"]) > 0
    assert _holds(user) == 2
    assert numbers(user) == (1000, 640)


def test_finished_generations_do_not_count_against_the_cap(api, user, settings, valid_body):
    settings.MAX_IN_FLIGHT_PER_USER = 1
    GenerationFactory.create_batch(3, owner=user, status="succeeded")
    assert api.post(GENERATIONS, valid_body, format="json").status_code == 201


# --- List and detail ------------------------------------------------------------------------


def test_list_is_newest_first_and_only_mine(api, user, other_user):
    mine = [GenerationFactory(owner=user) for _ in range(3)]
    GenerationFactory(owner=other_user)
    results = api.get(GENERATIONS).json()["results"]
    assert [g["id"] for g in results] == [str(g.pk) for g in reversed(mine)]


def test_list_paginates_with_a_cursor(api, user):
    created = {str(GenerationFactory(owner=user).pk) for _ in range(5)}
    page = api.get(GENERATIONS, {"page_size": 2}).json()
    seen = [g["id"] for g in page["results"]]
    assert len(seen) == 2
    while page["next"]:
        page = api.get(page["next"]).json()
        seen += [g["id"] for g in page["results"]]
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == created


def test_list_filters_by_public_status(api, user):
    pending = GenerationFactory(owner=user, status="pending")
    submitting = GenerationFactory(owner=user, status="submitting")
    done = GenerationFactory(owner=user, status="succeeded")
    pending_ids = {g["id"] for g in api.get(GENERATIONS, {"status": "pending"}).json()["results"]}
    assert pending_ids == {str(pending.pk), str(submitting.pk)}
    succeeded = api.get(GENERATIONS, {"status": "succeeded"}).json()["results"]
    assert [g["id"] for g in succeeded] == [str(done.pk)]
    assert api.get(GENERATIONS, {"status": "running"}).json()["results"] == []


def test_submitting_shows_as_pending(api, user):
    generation = GenerationFactory(owner=user, status="submitting")
    assert api.get(f"{GENERATIONS}{generation.pk}/").json()["status"] == "pending"


@pytest.mark.parametrize("status", ["submitting", "done", "PENDING"])
def test_list_rejects_unknown_status_filters(api, status):
    response = api.get(GENERATIONS, {"status": status})
    assert response.status_code == 400
    assert "status" in response.json()["error"]["fields"]


def test_list_query_count_does_not_grow_with_page_size(api, user, django_assert_max_num_queries):
    GenerationFactory.create_batch(30, owner=user, status="queued", fal_queue_position=3)
    api.get(GENERATIONS)  # the token's last_used_at write happens once a minute
    with django_assert_max_num_queries(3):
        assert len(api.get(GENERATIONS, {"page_size": 2}).json()["results"]) == 2
    with django_assert_max_num_queries(3):
        assert len(api.get(GENERATIONS, {"page_size": 30}).json()["results"]) == 30


def test_detail_of_another_users_generation_is_404(api, other_user):
    theirs = GenerationFactory(owner=other_user)
    for response in (
        api.get(f"{GENERATIONS}{theirs.pk}/"),
        api.post(f"{GENERATIONS}{theirs.pk}/cancel/"),
    ):
        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "Not found.", "fields": {}}
        }
    theirs.refresh_from_db()
    assert theirs.status == "pending"


@pytest.mark.parametrize("pk", [uuid.uuid4(), "not-a-uuid", "1"])
def test_detail_of_unknown_ids_is_404_json(api, pk):
    response = api.get(f"{GENERATIONS}{pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_succeeded_generation_has_a_downloadable_video_url(api, user, other_user, bearer_client):
    generation = GenerationFactory(owner=user, status="succeeded")
    generation.video.save("v.mp4", ContentFile(b"\x00\x00\x00\x18ftypmp42 video"), save=True)
    body = api.get(f"{GENERATIONS}{generation.pk}/").json()
    assert body["video_url"] == f"http://testserver/media/generations/{generation.pk}/video.mp4"
    video = api.get(body["video_url"])
    assert video.status_code == 200
    assert b"".join(video.streaming_content).endswith(b"video")
    assert bearer_client(other_user).get(body["video_url"]).status_code == 404
    assert APIClient().get(body["video_url"]).status_code == 404


def test_hidden_generation_has_no_video_url(api, user):
    generation = GenerationFactory(
        owner=user, status="succeeded", moderation_state="hidden", moderation_reason="Policy"
    )
    generation.video.save("v.mp4", ContentFile(b"video"), save=True)
    body = api.get(f"{GENERATIONS}{generation.pk}/").json()
    assert body["video_url"] is None
    assert body["moderation"] == {"state": "hidden", "reason": "Policy"}


def test_failed_generation_shows_its_error(api, user):
    generation = GenerationFactory(
        owner=user,
        status="failed",
        error_code="content_policy",
        error_message="The content was flagged.",
    )
    body = api.get(f"{GENERATIONS}{generation.pk}/").json()
    assert body["status"] == "failed"
    assert body["video_url"] is None
    # The code as recorded; the message in plain words (the upstream words stay with staff).
    assert body["error"] == {
        "code": "content_policy",
        "message": str(wording.FAILURE_REASONS["content_policy"]),
    }


def test_queue_position_shows_while_queued(api, user):
    generation = GenerationFactory(owner=user, status="queued", fal_queue_position=4)
    assert api.get(f"{GENERATIONS}{generation.pk}/").json()["queue_position"] == 4


# --- Cancel ---------------------------------------------------------------------------------


def test_cancel_a_pending_generation_releases_its_hold(api, user, valid_body):
    created = api.post(GENERATIONS, valid_body, format="json").json()
    assert numbers(user) == (1000, 320)
    response = api.post(f"{GENERATIONS}{created['id']}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert numbers(user) == (1000, 0)
    again = api.post(f"{GENERATIONS}{created['id']}/cancel/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_transition"
    assert numbers(user) == (1000, 0)


def test_cancel_needs_post(api, user):
    generation = GenerationFactory(owner=user)
    assert api.get(f"{GENERATIONS}{generation.pk}/cancel/").status_code == 405


# --- Quote ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "credits"),
    [
        ({}, 320),
        ({"duration": "4s", "resolution": "720p", "generate_audio": False}, 80),
        ({"duration": "6s", "resolution": "1080p", "generate_audio": True}, 240),
        ({"prompt": "ignored", "image_url": "ignored", "aspect_ratio": "9:16"}, 320),
    ],
)
def test_quote_prices_without_charging(api, user, body, credits):
    response = api.post(QUOTE, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["cost_credits"] == credits
    assert (
        response.json()["breakdown"]["seconds"] * response.json()["breakdown"]["credits_per_second"]
        == credits
    )
    assert numbers(user) == (1000, 0)
    assert LedgerEntry.objects.filter(account__user=user).count() == 1


def test_quote_accepts_multipart_strings(api):
    response = api.post(QUOTE, {"duration": "4s", "generate_audio": "off"}, format="multipart")
    assert response.json()["cost_credits"] == 80


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duration": "9s"}, "duration"),
        ({"resolution": "4k"}, "resolution"),
        ({"generate_audio": "sometimes"}, "generate_audio"),
        ({"aspect_ratio": "1:1"}, "aspect_ratio"),
    ],
)
def test_quote_validation_errors(api, body, field):
    response = api.post(QUOTE, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_quote_needs_authentication(db):
    assert APIClient().post(QUOTE, {}, format="json").status_code == 401


def test_an_oversized_upload_is_refused_before_it_is_read(api, user, settings):
    settings.IMAGE_MAX_BYTES = 1024
    big = ContentFile(b"\x89PNG" + b"\x00" * 400_000, name="huge.png")
    response = api.post(GENERATIONS, {"prompt": "x", "image": big}, format="multipart")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert not Generation.objects.exists()
    assert numbers(user) == (1000, 0)
