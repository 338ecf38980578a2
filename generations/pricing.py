"""What a video costs: one function used by the API, the portal's live price and accept."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from generations.models import Duration, PricingRule, Resolution
from veoproject.exceptions import PricingError
from veoproject.local_cache import LocalCache

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
class LineItem:
    """One line of a price: `seconds` x `credits_per_second` = `credits` for one of the
    things that set it. `item` is "model" (its `value` is the model, fal's endpoint id),
    "resolution" (e.g. "1080p") or "audio" (True or False)."""

    item: str
    value: str | bool
    seconds: int
    credits_per_second: int
    credits: int

    def as_dict(self) -> dict:
        return {
            "item": self.item,
            "value": self.value,
            "seconds": self.seconds,
            "credits_per_second": self.credits_per_second,
            "credits": self.credits,
        }


@dataclass(frozen=True)
class Quote:
    credits: int
    credits_per_second: int
    seconds: int
    resolution: str
    generate_audio: bool
    endpoint: str
    line_items: tuple[LineItem, ...] = ()

    @property
    def price_breakdown(self) -> list[dict]:
        """The line items as stored on a generation and a quote, and shown by the API."""
        return [item.as_dict() for item in self.line_items]

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


# The active rules as last read in this process, kept LOCAL_CACHE_SECONDS (cleared at once
# when this process saves a rule): a quoted create pays its quote whatever is cached here.
_active_rows = LocalCache[tuple[tuple[str, str, bool, int], ...]](
    "pricing.active_rows", invalidated_by=[PricingRule]
)


def _rows(endpoints: tuple[str, ...]) -> tuple[tuple[str, str, bool, int], ...]:
    """(endpoint, resolution, generate_audio, credits per second) of the active rules of
    `endpoints`: one query, or none while the local cache holds them."""

    def load() -> tuple[tuple[str, str, bool, int], ...]:
        return tuple(
            PricingRule.objects.filter(endpoint__in=endpoints, active=True).values_list(
                "endpoint", "resolution", "generate_audio", "credits_per_second"
            )
        )

    return _active_rows.get(endpoints, load)


def active_rates(endpoint: str | None = None) -> Rates:
    """{(resolution, generate_audio): credits per second} of the active rules, in one query
    (or from the local cache). Pass it to `quote` and `orderable_resolutions` to price and
    validate from one read."""
    rows = _rows((endpoint or settings.FAL_ENDPOINT,))
    return {(resolution, audio): rate for _endpoint, resolution, audio, rate in rows}


def active_rates_by_endpoint(endpoints: Iterable[str]) -> dict[str, Rates]:
    """`active_rates` of several endpoints (the catalogue's models), in one query."""
    rates: dict[str, Rates] = {}
    for endpoint, resolution, audio, rate in _rows(tuple(endpoints)):
        rates.setdefault(endpoint, {})[(resolution, audio)] = rate
    return rates


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
        line_items=_line_items(
            endpoint=endpoint,
            seconds=seconds,
            resolution=resolution,
            generate_audio=bool(generate_audio),
            rates=rates,
        ),
    )


def _line_items(
    *, endpoint: str, seconds: int, resolution: str, generate_audio: bool, rates: Rates
) -> tuple[LineItem, ...]:
    """The rate of (resolution, audio) split into what each choice adds per second:
    the model's cheapest silent rate, what this resolution adds to it, what audio adds.
    The lines always add up to the price (seconds x the rule's rate); a rule that costs
    less than another (audio priced below silence) shows as a negative line."""
    rate = rates[(resolution, generate_audio)]
    # The silent rate of this resolution; when only the audio rate exists, audio is not
    # sold apart and adds nothing.
    silent = rates.get((resolution, False), rate)
    model = min([r for (_, audio), r in rates.items() if not audio] + [silent])
    lines = (
        ("model", endpoint, model),
        ("resolution", resolution, silent - model),
        ("audio", generate_audio, rate - silent),
    )
    return tuple(
        LineItem(
            item=item,
            value=value,
            seconds=seconds,
            credits_per_second=per_second,
            credits=per_second * seconds,
        )
        for item, value, per_second in lines
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
    _active_rows.clear()  # bulk_create sends no post_save


def describe(price_breakdown: list[dict] | None) -> list[dict]:
    """A stored price breakdown in words for the portal: each line's label and what was
    chosen, beside its seconds x rate and credits. Empty for generations accepted before
    line items were recorded."""
    labels = {"model": _("Model"), "resolution": _("Resolution"), "audio": _("Audio")}
    lines = []
    for line in price_breakdown or []:
        value = line.get("value")
        if line.get("item") == "audio":
            value = _("with audio") if value else _("no audio")
        lines.append(
            {
                "label": labels.get(line.get("item", ""), line.get("item", "")),
                "value": value,
                "seconds": line.get("seconds"),
                "credits_per_second": line.get("credits_per_second"),
                "credits": line.get("credits"),
            }
        )
    return lines
