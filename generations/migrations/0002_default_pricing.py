from django.db import migrations

ENDPOINT = "fal-ai/veo3.1/image-to-video"
# fal's list price at 100 credits per US dollar: $0.40/s with audio, $0.20/s without at
# 720p/1080p; 4K ($0.60/$0.40) seeded inactive, for staff to switch on.
DEFAULTS = [
    ("720p", True, 40, True),
    ("720p", False, 20, True),
    ("1080p", True, 40, True),
    ("1080p", False, 20, True),
    ("4k", True, 60, False),
    ("4k", False, 40, False),
]


def seed(apps, schema_editor):
    PricingRule = apps.get_model("generations", "PricingRule")
    for resolution, audio, rate, active in DEFAULTS:
        PricingRule.objects.get_or_create(
            endpoint=ENDPOINT,
            resolution=resolution,
            generate_audio=audio,
            defaults={"credits_per_second": rate, "active": active},
        )


class Migration(migrations.Migration):
    dependencies = [("generations", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
