"""What a video costs: one function used by the API, the portal's live price and accept."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from generations.models import Duration, PricingRule, Resolution
from veoproject.exceptions import PricingError

# Default prices live in migrations/0002_default_pricing.py (fal list price, 100 cr/USD).


@dataclass(frozen=True)
class Quote:
    credits: int
    credits_per_second: int
    seconds: int
    resolution: str
    generate_audio: bool
    endpoint: str

    @property
    def breakdown(self) -> dict:
        return {
            "seconds": self.seconds,
            "credits_per_second": self.credits_per_second,
            "resolution": self.resolution,
            "generate_audio": self.generate_audio,
            "endpoint": self.endpoint,
        }


def duration_seconds(duration: str) -> int:
    if duration not in Duration.values:
        raise PricingError(
            f"Duration must be one of {', '.join(Duration.values)}.",
            fields={"duration": [f"Choose one of {', '.join(Duration.values)}."]},
        )
    return int(duration.rstrip("s"))


def quote(
    *, duration: str, resolution: str, generate_audio: bool, endpoint: str | None = None
) -> Quote:
    """Price a video from the active pricing rules. PricingError if none matches."""
    endpoint = endpoint or settings.FAL_ENDPOINT
    seconds = duration_seconds(duration)
    rate = (
        PricingRule.objects.filter(
            endpoint=endpoint,
            resolution=resolution,
            generate_audio=bool(generate_audio),
            active=True,
        )
        .values_list("credits_per_second", flat=True)
        .first()
    )
    if rate is None:
        raise PricingError(
            f"{resolution} is not available" + (" with audio." if generate_audio else "."),
            fields={"resolution": [f"{resolution} is not available for these options."]},
        )
    return Quote(
        credits=rate * seconds,
        credits_per_second=rate,
        seconds=seconds,
        resolution=resolution,
        generate_audio=bool(generate_audio),
        endpoint=endpoint,
    )


def orderable_resolutions(endpoint: str | None = None) -> list[str]:
    """Resolutions with an active price, in the order of the Resolution choices."""
    active = set(
        PricingRule.objects.filter(endpoint=endpoint or settings.FAL_ENDPOINT, active=True)
        .values_list("resolution", flat=True)
        .distinct()
    )
    return [r for r in Resolution.values if r in active]
