"""Portal pages for generations: the studio (create form with a live price), the gallery,
a generation's page, its polling partial, cancel and the price preview."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import LedgerEntry, User
from accounts.selectors import credit_summary
from generations import pricing, selectors, services
from generations.forms import GenerationForm, QuoteForm, new_form_key
from generations.models import Generation
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
    "active": ("In progress", Generation.IN_FLIGHT),
    "succeeded": ("Ready", (Generation.Status.SUCCEEDED,)),
    "failed": ("Failed", (Generation.Status.FAILED,)),
    "canceled": ("Canceled", (Generation.Status.CANCELED,)),
}
# Service field names that the create form shows under another field.
FIELD_ALIASES = {"image_file": "image"}


def _own_generation(request: AuthenticatedHttpRequest, pk: UUID) -> Generation:
    """The user's own generation; anybody else's is a 404, staff included (the admin is
    where staff look at other people's work)."""
    return get_object_or_404(Generation, pk=pk, owner=request.user)


def price_context(*, user: User, options: dict) -> dict:
    """What the price box shows: the quote from the same `pricing.quote()` that accept
    uses, and what the user would have left. Never raises."""
    available = credit_summary(user=user).available
    try:
        quote = pricing.quote(
            duration=options.get("duration") or "",
            resolution=options.get("resolution") or "",
            generate_audio=bool(options.get("generate_audio")),
        )
    except ApplicationError as exc:
        return {"quote": None, "price_error": exc.message, "available": available}
    return {
        "quote": quote,
        "available": available,
        "remaining": available - quote.credits,
        "affordable": available >= quote.credits,
        "shortfall": max(0, quote.credits - available),
    }


def _form_options(form: GenerationForm | QuoteForm) -> dict:
    """The price options as the form currently holds them (bound data or initial)."""
    if form.is_bound:
        return {
            "duration": form.data.get(form.add_prefix("duration")),
            "resolution": form.data.get(form.add_prefix("resolution")),
            "generate_audio": form.data.get(form.add_prefix("generate_audio"))
            not in (None, "", "false", "False", "0", "off"),
        }
    return {name: form[name].initial for name in ("duration", "resolution", "generate_audio")}


@login_required
@require_http_methods(["GET", "POST"])
def studio(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The dashboard: the create form with its live price, and the latest videos."""
    if request.method == "POST":
        form = GenerationForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                result = services.accept(
                    user=request.user,
                    params=form.to_params(),
                    image_file=form.cleaned_data.get("image"),
                    idempotency_key=form.cleaned_data.get("idempotency_key"),
                )
            except IdempotencyKeyReused:
                form.renew_key()
                form.add_error(
                    None,
                    "This form was already sent with other settings. Check the settings "
                    "and send it again.",
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
                    messages.info(request, "That was already sent: here is the same video.")
                else:
                    messages.success(
                        request,
                        f"On its way: {generation.cost_credits:,} credits are held for it "
                        "and are only spent if the video is made.",
                    )
                return redirect("generation-list")
        image_lost = bool(request.FILES.get("image"))
        image_again = False
    else:
        initial = _prefill(request)
        # An uploaded image is not reused: the user chooses it again.
        image_again = bool(initial) and not initial.get("image_url")
        form = GenerationForm(initial={**initial, "idempotency_key": new_form_key()})
        image_lost = False
    recent = selectors.generation_list(user=request.user)[:RECENT_ON_STUDIO]
    return render(
        request,
        "generations/generation_form.html",
        {
            "form": form,
            "image_lost": bool(image_lost and form.errors),
            "image_again": image_again,
            "recent": recent,
            "poll_seconds": POLL_SECONDS,
            "next_url": reverse("studio"),
            "image_max_mb": settings.IMAGE_MAX_BYTES // (1024 * 1024),
            **price_context(user=request.user, options=_form_options(form)),
        },
    )


def _prefill(request: AuthenticatedHttpRequest) -> dict:
    """ "Make another like this": the settings of one of the user's generations."""
    source_pk = request.GET.get("from")
    if not source_pk:
        return {}
    try:
        source = Generation.objects.filter(owner=request.user, pk=UUID(source_pk)).first()
    except ValueError:
        return {}
    if source is None or source.is_hidden:
        return {}
    return {
        "prompt": source.prompt,
        "image_url": source.image_url,
        "aspect_ratio": source.aspect_ratio,
        "duration": source.duration,
        "resolution": source.resolution,
        "generate_audio": source.generate_audio,
    }


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
            "generations": page.object_list,
            "status_filter": status_filter,
            "status_filters": [(key, label) for key, (label, _) in STATUS_FILTERS.items()],
            "poll_seconds": POLL_SECONDS,
        },
    )


@login_required
@require_GET
def generation_detail(request: AuthenticatedHttpRequest, pk: UUID) -> HttpResponse:
    generation = _own_generation(request, pk)
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
        messages.error(request, f"Could not cancel: {exc.message}")
    else:
        messages.success(
            request, f"Canceled. The {generation.cost_credits:,} credits held for it are back."
        )
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("generation-detail", args=[generation.pk])
    return redirect(next_url)
