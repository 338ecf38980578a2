"""The Veo 3.1 catalogue: a generation's model, its optional arguments and its extra input
images (first + last frame, references), and default prices for every catalogued model."""

import django.db.models.deletion
from django.db import migrations, models

import generations.models

# fal's list prices at 100 credits per US dollar, per model x resolution x audio (credits
# per second). Migrations keep their own copy; `generations.catalogue` holds fal's dollar
# prices and their sources:
#   standard tier: "For every second of video you generate you will be charged $0.20 without
#   audio or $0.40 with audio for 720p or 1080p. At 4k, you will be charged $0.40 per second
#   without audio, or $0.60 with." (https://fal.ai/models/fal-ai/veo3.1/llms.txt,
#   https://fal.ai/models/fal-ai/veo3.1/reference-to-video/llms.txt)
#   fast tier: "$0.10 without audio or $0.15 with audio for 720p or 1080p. At 4k ... $0.30
#   per second without audio, or $0.35 with."
#   (https://fal.ai/models/fal-ai/veo3.1/fast/first-last-frame-to-video/llms.txt)
# 4k rows are seeded inactive, as in 0002: staff switch them on. first-last-frame-to-video
# has no 4k row (no price for it is known). Existing rows (any endpoint, resolution and audio
# already priced) are kept as they are.
STANDARD = {("720p", True): 40, ("720p", False): 20, ("1080p", True): 40, ("1080p", False): 20}
STANDARD_4K = {("4k", True): 60, ("4k", False): 40}
FAST = {("720p", True): 15, ("720p", False): 10, ("1080p", True): 15, ("1080p", False): 10}
FAST_4K = {("4k", True): 35, ("4k", False): 30}

PRICES = {
    "fal-ai/veo3.1/image-to-video": (STANDARD, STANDARD_4K),
    "fal-ai/veo3.1": (STANDARD, STANDARD_4K),
    "fal-ai/veo3.1/fast": (FAST, FAST_4K),
    "fal-ai/veo3.1/fast/image-to-video": (FAST, FAST_4K),
    "fal-ai/veo3.1/first-last-frame-to-video": (STANDARD, {}),
    "fal-ai/veo3.1/fast/first-last-frame-to-video": (FAST, FAST_4K),
    "fal-ai/veo3.1/reference-to-video": (STANDARD, STANDARD_4K),
}

SINGLE_IMAGE_MODELS = ("fal-ai/veo3.1/image-to-video", "fal-ai/veo3.1/fast/image-to-video")


def seed_prices(apps, schema_editor):
    PricingRule = apps.get_model("generations", "PricingRule")
    for endpoint, (active_rows, inactive_rows) in PRICES.items():
        for rows, active in ((active_rows, True), (inactive_rows, False)):
            for (resolution, audio), rate in rows.items():
                if PricingRule.objects.filter(
                    endpoint=endpoint, resolution=resolution, generate_audio=audio
                ).exists():
                    continue
                PricingRule.objects.create(
                    endpoint=endpoint,
                    resolution=resolution,
                    generate_audio=audio,
                    credits_per_second=rate,
                    active=active,
                )


class Migration(migrations.Migration):
    dependencies = [("generations", "0007_cache_table")]

    operations = [
        migrations.AddField(
            model_name="generation",
            name="model",
            field=models.CharField(default="fal-ai/veo3.1/image-to-video", max_length=200),
        ),
        migrations.AddField(
            model_name="generation",
            name="model_options",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="generation",
            name="aspect_ratio",
            field=models.CharField(
                choices=[
                    ("16:9", "16:9 landscape"),
                    ("9:16", "9:16 portrait"),
                    ("auto", "auto (from the image)"),
                ],
                max_length=8,
            ),
        ),
        migrations.RemoveConstraint(model_name="generation", name="gen_has_image"),
        migrations.AddConstraint(
            model_name="generation",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("model__in", SINGLE_IMAGE_MODELS), _negated=True),
                    models.Q(("image", ""), _negated=True),
                    models.Q(("image_url", ""), _negated=True),
                    _connector="OR",
                ),
                name="gen_has_image",
            ),
        ),
        migrations.CreateModel(
            name="GenerationImage",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "slot",
                    models.CharField(
                        choices=[
                            ("first_frame_url", "First frame"),
                            ("last_frame_url", "Last frame"),
                            ("image_urls", "Reference image"),
                        ],
                        max_length=20,
                    ),
                ),
                ("position", models.PositiveSmallIntegerField(default=0)),
                (
                    "image",
                    models.FileField(
                        blank=True,
                        max_length=300,
                        upload_to=generations.models._private_input_path,
                    ),
                ),
                ("image_url", models.URLField(blank=True, max_length=2048)),
                (
                    "generation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="input_images",
                        to="generations.generation",
                    ),
                ),
            ],
            options={"ordering": ["generation", "slot", "position"]},
        ),
        migrations.AddConstraint(
            model_name="generationimage",
            constraint=models.UniqueConstraint(
                fields=("generation", "slot", "position"), name="gen_image_one_per_slot"
            ),
        ),
        migrations.AddConstraint(
            model_name="generationimage",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("image", ""), _negated=True),
                    models.Q(("image_url", ""), _negated=True),
                    _connector="OR",
                ),
                name="gen_image_has_image",
            ),
        ),
        migrations.AddConstraint(
            model_name="generationimage",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("slot__in", ["first_frame_url", "last_frame_url", "image_urls"])
                ),
                name="gen_image_slot_valid",
            ),
        ),
        migrations.RunPython(seed_prices, migrations.RunPython.noop),
    ]
