"""Pricing rules in the admin: changes are recorded and apply to new quotes only."""

from __future__ import annotations

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from accounts.models import LedgerEntry
from generations import pricing
from generations.models import Generation, PricingRule, PricingRuleChange


def rule_720_audio() -> PricingRule:
    return PricingRule.objects.get(
        endpoint=settings.FAL_ENDPOINT, resolution="720p", generate_audio=True, active=True
    )


def form_data(rule: PricingRule, **changes) -> dict:
    data = {
        "endpoint": rule.endpoint,
        "resolution": rule.resolution,
        "generate_audio": "on" if rule.generate_audio else "",
        "credits_per_second": rule.credits_per_second,
        "active": "on" if rule.active else "",
        "changes-TOTAL_FORMS": "0",
        "changes-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_a_price_change_is_recorded_with_who_and_what(admin_client_for, superuser):
    rule = rule_720_audio()
    old = rule.credits_per_second

    response = admin_client_for(superuser).post(
        reverse("admin:generations_pricingrule_change", args=[rule.pk]),
        form_data(rule, credits_per_second=old + 10),
    )

    assert response.status_code == 302
    change = PricingRuleChange.objects.get(rule=rule)
    assert change.changed_by == superuser
    assert change.changes == {"credits_per_second": [old, old + 10]}
    rule.refresh_from_db()
    assert rule.updated_by == superuser
    log = LogEntry.objects.get(object_id=str(rule.pk))
    assert log.change_message == f"Pricing changed: credits_per_second: {old} -> {old + 10}"


def test_saving_without_changes_records_nothing(admin_client_for, superuser):
    rule = rule_720_audio()

    admin_client_for(superuser).post(
        reverse("admin:generations_pricingrule_change", args=[rule.pk]), form_data(rule)
    )

    assert not PricingRuleChange.objects.exists()
    assert not LogEntry.objects.exists()


def test_new_price_applies_to_new_quotes_only(admin_client_for, superuser, user):
    from generations import services

    before = pricing.quote(duration="8s", resolution="720p", generate_audio=True).credits
    accepted = services.accept(
        user=user,
        params={
            "prompt": "A lighthouse in a storm",
            "image_url": "https://images.example.com/l.jpg",
            "aspect_ratio": "16:9",
            "duration": "8s",
            "resolution": "720p",
            "generate_audio": True,
        },
    ).generation
    rule = rule_720_audio()

    admin_client_for(superuser).post(
        reverse("admin:generations_pricingrule_change", args=[rule.pk]),
        form_data(rule, credits_per_second=rule.credits_per_second * 2),
    )

    assert pricing.quote(duration="8s", resolution="720p", generate_audio=True).credits == (
        before * 2
    )
    accepted.refresh_from_db()
    assert accepted.cost_credits == before
    hold = LedgerEntry.objects.get(generation=accepted, kind="hold")
    assert hold.reserved_change == before


def test_a_second_active_rule_for_the_same_options_is_refused(admin_client_for, superuser):
    rule = rule_720_audio()

    response = admin_client_for(superuser).post(
        reverse("admin:generations_pricingrule_add"),
        form_data(rule, credits_per_second=1),
    )

    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert (
        PricingRule.objects.filter(
            endpoint=settings.FAL_ENDPOINT, resolution="720p", generate_audio=True
        ).count()
        == 1
    )
    assert not PricingRuleChange.objects.exists()


def test_a_new_rule_is_recorded_and_rules_cannot_be_deleted(admin_client_for, superuser):
    client = admin_client_for(superuser)
    rule = rule_720_audio()

    client.post(
        reverse("admin:generations_pricingrule_add"),
        form_data(rule, endpoint="fal-ai/veo3.1/lite/image-to-video", credits_per_second=90),
    )

    new = PricingRule.objects.get(endpoint="fal-ai/veo3.1/lite/image-to-video")
    assert PricingRuleChange.objects.get(rule=new).changes["credits_per_second"] == [None, 90]
    assert (
        client.get(reverse("admin:generations_pricingrule_delete", args=[new.pk])).status_code
        == 403
    )


def test_moderator_cannot_change_pricing(admin_client_for, moderator):
    rule = rule_720_audio()
    response = admin_client_for(moderator).post(
        reverse("admin:generations_pricingrule_change", args=[rule.pk]),
        form_data(rule, credits_per_second=1),
    )

    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.credits_per_second != 1
    assert Generation.objects.count() == 0
