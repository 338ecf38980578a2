"""A generation's outcome by email: "ready" with a link, "could not be made" with the reason
and what was charged; once per generation, only to owners who want them."""

from __future__ import annotations

import pytest
from django.core import mail

from generations import services, wording
from generations.models import RefundPolicy
from notifications import tasks
from notifications.models import SentEmail
from notifications.preferences import update_preferences
from tests.factories import REQUEST_BODY, UserFactory
from tests.notifications.conftest import html_of, link_in, sent

pytestmark = pytest.mark.django_db

READY = "Your video is ready"
FAILED = "Your video could not be made"


def test_ready_email_links_to_the_generation_page(user, run_video):
    generation = run_video(user)

    assert generation.is_succeeded
    (message,) = sent(READY)
    assert message.to == [user.email]
    page = f"https://veo.example.com/videos/{generation.pk}/"
    assert page in message.body
    assert f'href="{page}"' in html_of(message)
    assert "320 credits were spent" in message.body


def test_ready_email_goes_once_when_the_task_and_the_finish_run_twice(user, run_video, at_commit):
    generation = run_video(user)
    with at_commit():
        tasks.generation_outcome(str(generation.pk))  # a redelivered task
        services.finish(generation_id=generation.pk)  # a late poll or webhook
        services.fail(generation_id=generation.pk, code="timeout", message="late")

    assert len(sent(READY)) == 1
    assert len(mail.outbox) == 1
    assert SentEmail.objects.get(generation=generation).sent_at is not None


def test_failed_email_gives_the_reason_and_says_nothing_was_charged(user, run_video):
    generation = run_video(user, prompt="A duel at noon [fal:content_policy]")

    assert generation.is_failed
    (message,) = sent(FAILED)
    # The plain reason and advice of the portal, never the vendor's raw words.
    assert str(wording.failure_reason(generation)) in message.body
    assert generation.error_message not in message.body
    assert "fal" not in message.body.replace("[fal:content_policy]", "")
    assert "Nothing was charged: 320 credits returned." in message.body
    assert "Nothing was charged" in html_of(message)
    assert f"https://veo.example.com/videos/{generation.pk}/" in message.body


def test_a_failure_charged_by_the_refund_policy_says_what_was_charged(user, run_video):
    RefundPolicy.objects.update_or_create(
        reason=RefundPolicy.Reason.CONTENT_POLICY,
        defaults={"action": RefundPolicy.Action.SHARE, "share_percent": 25},
    )
    generation = run_video(user, prompt="A duel at noon [fal:content_policy]")

    assert generation.policy_charged_credits == 80
    (message,) = sent(FAILED)
    assert "Nothing was charged" not in message.body
    assert "80 credits were spent and 240 returned" in message.body


def test_switched_off_sends_nothing(user, run_video):
    update_preferences(
        user=user, video_emails=False, low_balance_emails=True, low_balance_threshold=None
    )
    run_video(user)
    run_video(user, prompt="Storm clouds [fal:runner_error]")

    assert mail.outbox == []


def test_a_cancel_the_owner_asked_for_sends_nothing(user, at_commit):
    with at_commit():
        generation = services.accept(user=user, params=REQUEST_BODY).generation
        services.cancel(generation=generation, actor=user)

    assert mail.outbox == []


def test_a_cancel_by_staff_tells_the_owner(user, staff_user, at_commit):
    generation = services.accept(user=user, params=REQUEST_BODY).generation  # not submitted
    with at_commit():
        services.cancel(generation=generation, actor=staff_user)

    (message,) = sent(FAILED)
    assert str(wording.CANCELED) in message.body
    assert "Nothing was charged" in message.body


def test_each_part_escapes_the_prompt_for_its_own_format(run_video):
    owner = UserFactory(credits=1000)
    run_video(owner, prompt='A cat <b>jumps</b> & "lands"')

    (message,) = sent(READY)
    assert 'A cat <b>jumps</b> & "lands"' in message.body  # plain text: as written
    html = html_of(message)
    assert "<b>jumps</b>" not in html
    assert "&lt;b&gt;jumps&lt;/b&gt; &amp;" in html


def test_a_user_without_an_address_gets_nothing(run_video):
    owner = UserFactory(credits=1000)
    type(owner).objects.filter(pk=owner.pk).update(email="")
    owner.refresh_from_db()
    run_video(owner)

    assert mail.outbox == []


def test_video_emails_carry_a_one_click_unsubscribe(user, run_video):
    run_video(user)

    (message,) = sent(READY)
    link = link_in(message.body, "/notifications/unsubscribe/")
    assert message.extra_headers["List-Unsubscribe"] == f"<{link}>"
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f'href="{link}"' in html_of(message)


def test_a_mail_server_down_costs_nothing_and_a_later_run_sends_it(
    user, run_video, settings, at_commit
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens: refused
    settings.EMAIL_TIMEOUT = 2
    generation = run_video(user)

    assert generation.is_succeeded  # settlement stood; the email was not marked sent
    assert not SentEmail.objects.filter(generation=generation).exists()

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    tasks.generation_outcome(str(generation.pk))  # the failed task, resubmitted
    tasks.generation_outcome(str(generation.pk))
    assert len(sent(READY)) == 1
