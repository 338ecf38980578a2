"""Portal pages for generations: the landing page (anonymous `/`) and its sample video,
the studio (create form with a live price, Try again), the gallery, a generation's page,
its polling partial, cancel and the price preview."""

from __future__ import annotations

from typing import cast
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.contrib.humanize.templatetags.humanize import intcomma
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)

from accounts.models import LedgerEntry, User
from accounts.selectors import credit_summary
from generations import estimates, pricing, quotes, selectors, services
from generations.forms import GenerationForm, QuoteForm, new_form_key
from generations.models import Duration, Generation
from generations.quotes import QuoteRefused
from generations.requests import DEFAULTS
from generations.services.retrying import accept_again, reusable_image_source
from generations.simulated import SAMPLE_VIDEO  # the clip the simulated backend makes
from generations.validation import image_rules
from veoproject import languages, ranges
from veoproject.exceptions import (
    ApplicationError,
    IdempotencyKeyReused,
    InsufficientCredits,
    LimitExceeded,
)
from veoproject.form_errors import add_service_errors
from veoproject.request_types import AuthenticatedHttpRequest

GALLERY_PAGE_SIZE = 12
RECENT_ON_STUDIO = 4
POLL_SECONDS = 2
STATUS_FILTERS = {
    "active": (pgettext_lazy("video status", "In progress"), Generation.IN_FLIGHT),
    "succeeded": (pgettext_lazy("video status", "Ready"), (Generation.Status.SUCCEEDED,)),
    "failed": (pgettext_lazy("video status", "Failed"), (Generation.Status.FAILED,)),
    "canceled": (pgettext_lazy("video status", "Canceled"), (Generation.Status.CANCELED,)),
}
# Service field names that the create form shows under another field.
FIELD_ALIASES = {"image_file": "image"}
SAMPLE_MAX_AGE = 24 * 3600


def _own_generation(request: AuthenticatedHttpRequest, pk: UUID) -> Generation:
    """The user's own generation; anybody else's is a 404, staff included (the admin is
    where staff look at other people's work)."""
    return get_object_or_404(Generation, pk=pk, owner=request.user)


def price_context(*, user: User, options: dict) -> dict:
    """What the price box shows: the quote from the same `pricing.quote()` that accept
    uses, and what the user would have left. Never raises."""
    available = credit_summary(user=user).available
    issued = _binding_quote(user=user, options=options)
    try:
        quote = (
            issued.price
            if issued
            else pricing.quote(
                duration=options.get("duration") or "",
                resolution=options.get("resolution") or "",
                generate_audio=bool(options.get("generate_audio")),
                endpoint=options.get("model") or None,
            )
        )
    except ApplicationError as exc:
        return {"quote": None, "price_error": exc.message, "available": available}
    return {
        "quote": quote,
        # The studio form sends it back: the price shown is the price charged.
        "quote_id": issued.record.pk if issued else None,
        "available": available,
        "remaining": available - quote.credits,
        "affordable": available >= quote.credits,
        "shortfall": max(0, quote.credits - available),
    }


def _binding_quote(*, user: User, options: dict) -> quotes.IssuedQuote | None:
    """A binding quote of the options shown; None when they cannot be quoted (the price
    box says why)."""
    try:
        return quotes.issue(user=user, params={k: v for k, v in options.items() if v is not None})
    except ApplicationError:
        return None


def _form_options(form: GenerationForm | QuoteForm) -> dict:
    """The price options as the form currently holds them (bound data or initial)."""
    if form.is_bound:
        return {
            "model": form.model_entry.id,
            "duration": form.data.get(form.add_prefix("duration")),
            "resolution": form.data.get(form.add_prefix("resolution")),
            "generate_audio": form.data.get(form.add_prefix("generate_audio"))
            not in (None, "", "false", "False", "0", "off"),
        }
    names = ("duration", "resolution", "generate_audio")
    return {"model": form.model_entry.id, **{name: form[name].initial for name in names}}


def price_list() -> list[dict]:
    """The landing page's price table: one row per resolution and audio choice with an
    active price, one price per duration, each from `pricing.quote` (the one price rule)."""
    rates = pricing.active_rates()
    rows = []
    for resolution in pricing.orderable_resolutions(rates=rates):
        for audio in (True, False):
            if (resolution, audio) not in rates:
                continue
            quotes = [
                pricing.quote(
                    duration=duration, resolution=resolution, generate_audio=audio, rates=rates
                )
                for duration in Duration.values
            ]
            rows.append({"resolution": resolution, "generate_audio": audio, "quotes": quotes})
    return rows


def _example_quote() -> pricing.Quote | None:
    """The price of the studio's default video, for the landing page's headline."""
    try:
        return pricing.quote(
            duration=DEFAULTS["duration"],
            resolution=DEFAULTS["resolution"],
            generate_audio=DEFAULTS["generate_audio"],
        )
    except ApplicationError:
        return None


@require_http_methods(["GET", "HEAD", "POST"])
def studio(request: HttpRequest) -> HttpResponse:
    """`/`: the studio for a signed-in user; for anyone else the landing page (what the
    studio does, the sample video, the prices, how to get credits, sign up / log in)."""
    if request.user.is_authenticated:
        return _studio(cast(AuthenticatedHttpRequest, request))
    if request.method == "POST":
        return redirect_to_login(request.get_full_path())
    return render(
        request,
        "landing.html",
        {
            "price_rows": price_list(),
            "durations": Duration.values,
            "example": _example_quote(),
            "signup_credits": settings.SIGNUP_CREDITS,
        },
    )


@require_safe
def landing_sample(request: HttpRequest) -> HttpResponseBase:
    """The landing page's sample video, with byte ranges (players seek, Safari insists)."""
    return ranges.file_response(
        request,
        SAMPLE_VIDEO.open("rb"),
        content_type="video/mp4",
        filename="sample.mp4",
        headers={"Cache-Control": f"public, max-age={SAMPLE_MAX_AGE}"},
    )


def _studio(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The dashboard: the create form with its live price, and the latest videos."""
    if request.method == "POST":
        form = GenerationForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                if form.reuses_stored_image:
                    result = accept_again(
                        user=request.user,
                        source_id=form.cleaned_data["source"],
                        params=form.to_params(),
                        idempotency_key=form.cleaned_data.get("idempotency_key"),
                    )
                else:
                    result = services.accept(
                        user=request.user,
                        params=form.to_params(),
                        image_file=form.cleaned_data.get("image"),
                        idempotency_key=form.cleaned_data.get("idempotency_key"),
                    )
            except QuoteRefused as exc:
                # The price box showed a quote that expired or no longer fits the options:
                # say the price now (the box below shows it with a fresh quote).
                form.add_error(
                    None,
                    _(
                        "The price shown was out of date: this video costs %(credits)s "
                        "credits now. Nothing was held; check the price and send it again."
                    )
                    % {"credits": intcomma(exc.current.credits)},
                )
            except IdempotencyKeyReused:
                form.renew_key()
                form.add_error(
                    None,
                    _(
                        "This form was already sent with other settings. Check the settings "
                        "and send it again."
                    ),
                )
            except ApplicationError as exc:
                # Credits and the in-flight cap: the message says more than the fields.
                add_service_errors(
                    form,
                    exc,
                    aliases=FIELD_ALIASES,
                    hidden=("idempotency_key",),
                    with_message=isinstance(exc, InsufficientCredits | LimitExceeded),
                )
            else:
                generation = result.generation
                if result.replayed:
                    messages.info(request, _("That was already sent: here is the same video."))
                else:
                    messages.success(
                        request,
                        _(
                            "On its way: %(credits)s credits are held for it and are only "
                            "spent if the video is made."
                        )
                        % {"credits": languages.grouped(generation.cost_credits)},
                    )
                return redirect("generation-list")
        image_lost = bool(request.FILES.get("image"))
        reused = _reused_image(request, form.data.get("source"))
    else:
        initial, reused = _prefill(request)
        form = GenerationForm(initial={**initial, "idempotency_key": new_form_key()})
        image_lost = False
    recent = estimates.attach(selectors.generation_list(user=request.user)[:RECENT_ON_STUDIO])
    return render(
        request,
        "generations/generation_form.html",
        {
            "form": form,
            "image_lost": bool(image_lost and form.errors),
            "reused_image": reused,
            "recent": recent,
            # Credits explained until the first video is made (then the badge says it all).
            "first_time": not recent,
            "poll_seconds": POLL_SECONDS,
            "next_url": reverse("studio"),
            "image_max_mb": settings.IMAGE_MAX_BYTES // (1024 * 1024),
            "image_rules": image_rules(),
            **price_context(user=request.user, options=_form_options(form)),
        },
    )


def _reused_image(request: AuthenticatedHttpRequest, source_pk: str | None) -> Generation | None:
    """The user's own earlier generation whose stored image Try again uses, if any."""
    if not source_pk:
        return None
    try:
        source_id = UUID(str(source_pk))
    except ValueError:
        return None
    return reusable_image_source(user=request.user, source_id=source_id)


def _prefill(request: AuthenticatedHttpRequest) -> tuple[dict, Generation | None]:
    """Try again / "Make another like this": the settings of one of the user's own
    generations, and the generation whose stored image is used again (None when it had
    an image URL, which is prefilled instead)."""
    source_pk = request.GET.get("from")
    if not source_pk:
        return {}, None
    try:
        source = Generation.objects.filter(owner=request.user, pk=UUID(source_pk)).first()
    except ValueError:
        return {}, None
    if source is None or source.is_hidden:
        return {}, None
    initial = {
        "model": source.model,
        **{name: value for name, value in source.model_options.items() if name != "auto_fix"},
        "prompt": source.prompt,
        "image_url": source.image_url,
        "aspect_ratio": source.aspect_ratio,
        "duration": source.duration,
        "resolution": source.resolution,
        "generate_audio": source.generate_audio,
    }
    # The other models' images given as URLs come back too (uploads are chosen again).
    urls = [(row.slot, row.image_url) for row in source.input_images.all() if row.image_url]
    initial.update({slot: url for slot, url in urls if slot != "image_urls"})
    if any(slot == "image_urls" for slot, _ in urls):
        initial["image_urls"] = "\n".join(url for slot, url in urls if slot == "image_urls")
    reused = reusable_image_source(user=request.user, source_id=source.pk)
    if reused is not None:
        initial["source"] = reused.pk
    return initial, reused


@login_required
@require_GET
def studio_model_fields(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The studio's fields for the model picked (htmx): its image slots, and out of band
    its options with their choices and defaults. The price box follows (`model-changed`)."""
    form = GenerationForm(initial={"model": request.GET.get("model")})
    response = render(
        request,
        "generations/_model_fields.html",
        {"form": form, "image_max_mb": settings.IMAGE_MAX_BYTES // (1024 * 1024)},
    )
    response["HX-Trigger-After-Settle"] = "model-changed"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def quote_preview(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The live price: the price box as an HTML partial, or JSON when asked for."""
    form = QuoteForm(request.POST if request.method == "POST" else request.GET)
    form.is_valid()
    context = price_context(user=request.user, options=_form_options(form))
    if "application/json" in request.headers.get("Accept", ""):
        quote = context["quote"]
        if quote is None:
            return JsonResponse(
                {"error": {"code": "no_price", "message": context["price_error"], "fields": {}}},
                status=400,
            )
        return JsonResponse(
            {
                "cost_credits": quote.credits,
                "breakdown": quote.breakdown,
                "available": context["available"],
                "remaining": context["remaining"],
                "affordable": context["affordable"],
            }
        )
    return render(request, "generations/_price.html", context)


@login_required
@require_GET
def generation_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    generations = selectors.generation_list(user=request.user)
    status_filter = request.GET.get("status", "")
    if status_filter in STATUS_FILTERS:
        generations = generations.filter(status__in=STATUS_FILTERS[status_filter][1])
    else:
        status_filter = ""
    page = Paginator(generations, GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "generations/generation_list.html",
        {
            "page": page,
            "generations": estimates.attach(page.object_list),
            "status_filter": status_filter,
            "status_filters": [(key, label) for key, (label, _) in STATUS_FILTERS.items()],
            "poll_seconds": POLL_SECONDS,
        },
    )


@login_required
@require_GET
def generation_detail(request: AuthenticatedHttpRequest, pk: UUID) -> HttpResponse:
    generation = _own_generation(request, pk)
    estimates.attach([generation])
    entries = LedgerEntry.objects.filter(generation=generation).order_by("created_at", "id")
    return render(
        request,
        "generations/generation_detail.html",
        {
            "generation": generation,
            "entries": entries,
            "returned": any(e.kind == LedgerEntry.Kind.RELEASE for e in entries),
            "spent": any(e.kind == LedgerEntry.Kind.CAPTURE for e in entries),
            "refunded": any(e.kind == LedgerEntry.Kind.REFUND for e in entries),
            "price_lines": pricing.describe(generation.price_breakdown),
            "poll_seconds": POLL_SECONDS,
        },
    )


@login_required
@require_GET
def generation_status_partial(request: AuthenticatedHttpRequest, pk: UUID) -> HttpResponse:
    """What a page polls while a generation is in flight: its gallery card, or (with
    ``?for=detail``) the status panel of its page. A final answer carries no polling
    trigger, so polling stops; on the generation page it reloads the page once, to show
    the video and the ledger entries."""
    generation = _own_generation(request, pk)
    estimates.attach([generation])
    context = {
        "generation": generation,
        "poll_seconds": POLL_SECONDS,
        "oob_credits": True,
        "compact": request.GET.get("compact") == "1",
        # Where a cancel from this card returns to: the page that polls it.
        "next_url": request.headers.get("HX-Current-URL") or reverse("generation-list"),
    }
    if request.GET.get("for") == "detail":
        response = render(request, "generations/_status.html", context)
        if generation.is_final:
            response["HX-Refresh"] = "true"
        return response
    return render(request, "generations/_card.html", context)


@login_required
@require_POST
def generation_cancel(request: AuthenticatedHttpRequest, pk: UUID) -> HttpResponse:
    generation = _own_generation(request, pk)
    try:
        services.cancel(generation=generation, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, _("Could not cancel: %(reason)s") % {"reason": exc.message})
    else:
        messages.success(
            request,
            _("Canceled. The %(credits)s credits held for it are back.")
            % {"credits": languages.grouped(generation.cost_credits)},
        )
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("generation-detail", args=[generation.pk])
    return redirect(next_url)
