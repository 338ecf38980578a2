"""What a video costs: one function used by the API, the portal's live price and accept."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from generations.models import Duration, PricingRule, Resolution
from veoproject.exceptions import PricingError

# What one US dollar buys in credits: prices are set from fal's dollar rates with it, and
# the staff overview converts captured credits back to dollars with it.
CREDITS_PER_USD = 100

# fal's list price for fal-ai/veo3.1/image-to-video at 100 credits per US dollar: $0.40/s
# with audio, $0.20/s without, at 720p and 1080p; 4K ($0.60/$0.40) inactive until staff
# switch it on. Migration 0002 seeds the same rows (migrations keep their own copy).
DEFAULT_RULES = [
    # resolution, generate_audio, credits per second, active
    (Resolution.P720, True, 40, True),
    (Resolution.P720, False, 20, True),
    (Resolution.P1080, True, 40, True),
    (Resolution.P1080, False, 20, True),
    (Resolution.K4, True, 60, False),
    (Resolution.K4, False, 40, False),
]


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


Rates = dict[tuple[str, bool], int]


def active_rates(endpoint: str | None = None) -> Rates:
    """{(resolution, generate_audio): credits per second} of the active rules, in one query.
    Pass it to `quote` and `orderable_resolutions` to price and validate from one read."""
    rows = PricingRule.objects.filter(
        endpoint=endpoint or settings.FAL_ENDPOINT, active=True
    ).values_list("resolution", "generate_audio", "credits_per_second")
    return {(resolution, audio): rate for resolution, audio, rate in rows}


def quote(
    *,
    duration: str,
    resolution: str,
    generate_audio: bool,
    endpoint: str | None = None,
    rates: Rates | None = None,
) -> Quote:
    """Price a video from the active pricing rules. PricingError if none matches."""
    endpoint = endpoint or settings.FAL_ENDPOINT
    seconds = duration_seconds(duration)
    if rates is None:
        rates = active_rates(endpoint)
    rate = rates.get((resolution, bool(generate_audio)))
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


def orderable_resolutions(endpoint: str | None = None, *, rates: Rates | None = None) -> list[str]:
    """Resolutions with an active price, in the order of the Resolution choices."""
    if rates is None:
        rates = active_rates(endpoint)
    priced = {resolution for resolution, _ in rates}
    return [r for r in Resolution.values if r in priced]


def ensure_default_rules(endpoint: str | None = None) -> None:
    """Create the default rules for an endpoint that has none (fresh databases, tests)."""
    endpoint = endpoint or settings.FAL_ENDPOINT
    if PricingRule.objects.filter(endpoint=endpoint).exists():
        return
    PricingRule.objects.bulk_create(
        PricingRule(
            endpoint=endpoint,
            resolution=resolution,
            generate_audio=audio,
            credits_per_second=rate,
            active=active,
        )
        for resolution, audio, rate, active in DEFAULT_RULES
    )
