"""Admin for generations (moderation and support), the quotes users were given (read-only),
pricing rules, fal prices, refund policies and blocked terms.

Declarative: nothing here writes a status, a moderation state, a price or a balance
directly. Actions call `generations.moderation`, `generations.staff` (cancel, refund,
re-check), `generations.pricing_history` and `generations.costs`; generations themselves
are read-only.
"""

from __future__ import annotations

import uuid
from operator import itemgetter

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext_lazy as _

from accounts.models import LedgerEntry
from generations import costs, media, moderation, overview, pricing, pricing_history
from generations import staff as generation_staff
from generations.models import (
    BlockedTerm,
    CallbackAttempt,
    FalPrice,
    Generation,
    GenerationImage,
    PricingRule,
    PricingRuleChange,
    Quote,
    RefundPolicy,
)
from generations.pricing import CREDITS_PER_USD
from veoproject.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from veoproject.admin_reasons import ObjectActionsMixin, reason_action, required_reason
from veoproject.exceptions import ApplicationError
from veoproject.request_types import signed_in_user

Moderation = Generation.Moderation

# --- Generations ---------------------------------------------------------------------------


class LedgerEntryInline(ReadOnlyInline):
    model = LedgerEntry
    fk_name = "generation"
    fields = ("created_at", "kind", "amount", "reserved_change", "balance_after", "actor", "reason")
    verbose_name_plural = "ledger entries of this generation"


class CallbackAttemptInline(ReadOnlyInline):
    model = CallbackAttempt
    fields = ("attempt", "created_at", "url", "status_code", "succeeded", "error", "duration_ms")


class GenerationImageInline(ReadOnlyInline):
    """The first and last frames or references of a model that takes several images."""

    model = GenerationImage
    fields = ("slot", "position", "preview")
    verbose_name_plural = "input images (frames, references)"

    @admin.display(description="image")
    def preview(self, image: GenerationImage) -> str:
        if image.image:
            paths = dict(media.input_image_paths(image.generation))
            return format_html(
                '<a href="{0}"><img src="{0}" alt="{1}" style="max-width:240px;max-height:160px">'
                "</a>",
                paths[image],
                image.get_slot_display(),
            )
        # An image given by URL is not loaded into the admin (it could track staff).
        return format_html(
            '<a href="{}" rel="noreferrer noopener" target="_blank">{}</a>',
            image.image_url,
            image.image_url,
        )


def _hide(generation: Generation, actor, reason: str) -> bool:
    return moderation.hide(generation=generation, actor=actor, reason=reason)


def _unhide(generation: Generation, actor, reason: str) -> bool:
    return moderation.unhide(generation=generation, actor=actor, reason=reason)


def _flag(generation: Generation, actor, reason: str) -> bool:
    return moderation.flag(generation=generation, actor=actor, reason=reason)


def _cancel(generation: Generation, actor, reason: str) -> bool:
    generation_staff.cancel_generation(generation=generation, actor=actor, reason=reason)
    return True


def _refund(generation: Generation, actor, reason: str) -> bool:
    _entry, refunded_now = generation_staff.refund_generation(
        generation=generation, actor=actor, reason=reason
    )
    return refunded_now


for _func, _name in [
    (_hide, "hide"),
    (_unhide, "unhide"),
    (_flag, "flag"),
    (_cancel, "cancel"),
    (_refund, "refund"),
]:
    _func.__name__ = _name


@admin.register(Generation)
class GenerationAdmin(ObjectActionsMixin[Generation], ReadOnlyAdmin):
    # Read-only for everybody: statuses and moderation change only through actions.
    list_display = (
        "thumbnail",
        "short_id",
        "owner",
        "status",
        "moderation_state",
        "options",
        "cost_credits",
        "created_at",
        "completed_at",
    )
    list_display_links = ("short_id",)
    list_filter = (
        "status",
        "moderation_state",
        "model",
        "resolution",
        "generate_audio",
        "duration",
        "created_at",
    )
    list_select_related = ("owner",)
    search_fields = ("prompt", "owner__username", "owner__email", "=fal_request_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [GenerationImageInline, LedgerEntryInline, CallbackAttemptInline]
    fieldsets = (
        (None, {"fields": ("player", "owner_link", "prompt", "source_image")}),
        (
            "Options and cost",
            {
                "fields": (
                    "aspect_ratio",
                    "duration",
                    "resolution",
                    "generate_audio",
                    "endpoint",
                    "model",
                    "model_options",
                    "cost_credits",
                    "paid_by_quote",
                    "settlement_policy",
                )
            },
        ),
        (
            "Status",
            {
                "fields": (
                    "status",
                    "created_at",
                    "submitted_at",
                    "started_at",
                    "completed_at",
                    "error_code",
                    "error_message",
                )
            },
        ),
        (
            "fal",
            {
                "fields": (
                    "fal_request_id",
                    "fal_queue_position",
                    "fal_submit_count",
                    "fal_cost_usd",
                    "possible_extra_fal_cost",
                    "fal_video_url",
                    "fal_logs",
                    "video_bytes",
                    "attempts",
                    "next_poll_at",
                    "deadline_at",
                )
            },
        ),
        (
            "Moderation",
            {"fields": ("moderation_state", "moderation_reason", "moderated_by", "moderated_at")},
        ),
        (
            "Integration",
            {"fields": ("idempotency_key", "callback_url", "callback_delivered_at")},
        ),
    )
    object_actions = ("hide", "unhide", "flag", "cancel", "refund")
    actions = [
        reason_action(
            description="Hide (removed by moderation)",
            permissions=["moderate"],
            perform=_hide,
            confirm="The owner no longer sees the video or the image; they see "
            '"removed by moderation" and your reason. Staff still see everything.',
        ),
        reason_action(description="Make visible again", permissions=["moderate"], perform=_unhide),
        reason_action(
            description="Flag for review",
            permissions=["moderate"],
            perform=_flag,
            confirm="Flagged generations stay visible to their owner.",
        ),
        reason_action(
            description="Cancel (release the credits)",
            permissions=["moderate"],
            perform=_cancel,
            confirm="Only generations that fal has not started (pending or queued) can be "
            "canceled; their held credits are released.",
        ),
        reason_action(
            description="Refund (credits back, once)",
            permissions=["refund"],
            perform=_refund,
            confirm="The credits a succeeded generation cost go back to its owner, once.",
        ),
        "recheck",
    ]

    def object_action_applies(self, obj: Generation, action_name: str) -> bool:
        state = obj.moderation_state
        return {
            "hide": state != Moderation.HIDDEN,
            "unhide": state != Moderation.VISIBLE,
            "flag": state == Moderation.VISIBLE,
            "cancel": obj.is_cancelable,
            # Also a failure or cancel a refund policy charged for.
            "refund": obj.is_succeeded or obj.policy_charged_credits > 0,
        }.get(action_name, True)

    def has_moderate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("generations.moderate_generation")

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("generations.refund_generation")

    def get_readonly_fields(self, request, obj=None):
        return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            by_id = self.model.objects.filter(pk=uuid.UUID(search_term.strip()))
        except ValueError:
            return queryset, may_have_duplicates
        return queryset | by_id, may_have_duplicates

    @admin.display(description="id")
    def short_id(self, generation: Generation) -> str:
        return str(generation.pk)[:8]

    @admin.display(description="options")
    def options(self, generation: Generation) -> str:
        audio = "audio" if generation.generate_audio else "silent"
        return (
            f"{generation.duration} · {generation.resolution} · {generation.aspect_ratio} · {audio}"
        )

    @admin.display(description=_("quote"))
    def paid_by_quote(self, generation: Generation) -> str:
        quote = generation.quote
        if quote is None:
            return str(
                _("None: charged the price when accepted (or accepted before quotes were linked).")
            )
        return format_html(
            '<a href="{}">{}</a> · {}',
            reverse("admin:generations_quote_change", args=[quote.pk]),
            quote.pk,
            _("%(credits)s credits quoted") % {"credits": quote.cost_credits},
        )

    @admin.display(description="possible extra fal cost")
    def possible_extra_fal_cost(self, generation: Generation) -> str:
        if generation.fal_submit_count <= 1:
            return "None: one POST to fal."
        extra = generation.fal_submit_count - 1
        cost = (
            f"up to ${generation.fal_cost_usd * extra:.2f}"
            if generation.fal_cost_usd is not None
            else "unknown (no fal price)"
        )
        return f"{cost}: {extra} extra POST(s) may have left a billed job on fal."

    @admin.display(description="image")
    def thumbnail(self, generation: Generation) -> str:
        if generation.image:
            return format_html(
                '<img src="{}" alt="" loading="lazy" style="max-height:48px;max-width:86px">',
                reverse("generation-image", args=[generation.pk]),
            )
        # An image given by URL is not loaded into the admin (it could track staff).
        return format_html(
            '<a href="{}" rel="noreferrer noopener" target="_blank">URL</a>',
            generation.image_url,
        )

    @admin.display(description="source image")
    def source_image(self, generation: Generation) -> str:
        if generation.image:
            return format_html(
                '<img src="{}" alt="Source image" style="max-width:480px;max-height:320px">',
                reverse("generation-image", args=[generation.pk]),
            )
        return format_html(
            '<a href="{0}" rel="noreferrer noopener" target="_blank">{0}</a>',
            generation.image_url,
        )

    @admin.display(description="video")
    def player(self, generation: Generation) -> str:
        if not generation.video:
            return "No video stored."
        return format_html(
            '<video src="{}" controls preload="metadata" style="max-width:640px;'
            'max-height:360px"></video>',
            reverse("generation-video", args=[generation.pk]),
        )

    @admin.display(description="owner")
    def owner_link(self, generation: Generation) -> str:
        return format_html(
            '<a href="{}">{}</a> · <a href="{}?{}">all their generations</a>',
            reverse("admin:accounts_user_change", args=[generation.owner_id]),
            generation.owner,
            reverse("admin:generations_generation_changelist"),
            urlencode({"owner__id__exact": generation.owner_id}),
        )

    @admin.action(permissions=["moderate"], description="Re-check status with fal now")
    def recheck(self, request: HttpRequest, queryset: QuerySet) -> None:
        checked = 0
        for generation in queryset.filter(status__in=Generation.IN_FLIGHT).exclude(
            fal_request_id=""
        ):
            try:
                generation_staff.recheck_generation(
                    generation=generation, actor=signed_in_user(request)
                )
            except ApplicationError as exc:
                self.message_user(request, f"{generation}: {exc.message}", messages.ERROR)
            else:
                checked += 1
        self.message_user(
            request,
            f"Re-checked {checked} generation(s) with fal (only those in flight at fal).",
            messages.SUCCESS if checked else messages.WARNING,
        )

    def get_urls(self):
        return [
            path(
                "overview/",
                self.admin_site.admin_view(self.overview_view),
                name="generations_overview",
            ),
            path(
                "overview/resume-dispatch/",
                self.admin_site.admin_view(self.resume_dispatch_view),
                name="generations_resume_dispatch",
            ),
            *super().get_urls(),
        ]

    def resume_dispatch_view(self, request: HttpRequest) -> HttpResponse:
        """POST: end a pause of dispatch to fal now (the banner's button; audited). For
        staff who may change our fal account's state."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("generations.change_falaccount"):
            raise PermissionDenied
        if generation_staff.resume_dispatch(actor=signed_in_user(request)):
            self.message_user(
                request, "Dispatch to fal resumed; waiting generations are being sent."
            )
        else:
            self.message_user(request, "Dispatch to fal was not paused.", messages.WARNING)
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            target = reverse("admin:generations_overview")
        return HttpResponseRedirect(target)

    def overview_view(self, request: HttpRequest) -> TemplateResponse:
        """The staff overview: volumes, failures, credits captured, top spenders, work in
        flight (linked from the admin index)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Overview",
            "opts": self.model._meta,
            "stats": overview.overview(now=timezone.now()),
        }
        return TemplateResponse(request, "admin/overview.html", context)


# --- Quotes --------------------------------------------------------------------------------


class QuoteStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return Quote.State.choices

    def queryset(self, request, queryset):
        if self.value() not in Quote.State.values:
            return queryset
        return queryset.in_state(self.value(), timezone.now())


@admin.register(Quote)
class QuoteAdmin(ReadOnlyAdmin):
    """Binding quotes (generations.quotes), read-only: they are what a user was promised.
    Unused ones are kept until an hour past their expiry, used ones for good
    (`quotes.purge_expired`): they are what a generation (`Generation.quote`) was promised."""

    list_display = (
        "short_id",
        "owner",
        "model",
        "options_summary",
        "cost_credits",
        "created_at",
        "expires_at",
        "state",
        "paid_generation",
    )
    list_display_links = ("short_id",)
    list_filter = ("model", QuoteStateFilter, "created_at")
    list_select_related = ("owner",)
    search_fields = ("owner__username", "owner__email")
    show_full_result_count = False
    fields = (
        "id",
        "owner_link",
        "model",
        "options_summary",
        "cost_credits",
        "breakdown",
        "created_at",
        "expires_at",
        "state",
        "used_at",
        "paid_generation",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Quote]:
        # The generation it paid for (`Generation.quote`), joined: its id is all a row shows.
        return super().get_queryset(request).annotate(paid_generation_id=F("generation__id"))

    def get_search_results(self, request, queryset, search_term):
        try:  # a quote's id, as the API answered it: that quote
            quote_id = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        return queryset.filter(pk=quote_id), False

    @admin.display(description=_("id"))
    def short_id(self, quote: Quote) -> str:
        return str(quote.pk)[:8]

    @admin.display(description=_("options"))
    def options_summary(self, quote: Quote) -> str:
        options = quote.options
        audio = _("audio") if options.get("generate_audio") else _("silent")
        return f"{options.get('duration')} · {options.get('resolution')} · {audio}"

    @admin.display(description=_("state"))
    def state(self, quote: Quote) -> str:
        return str(quote.state_at(timezone.now()).label)

    @admin.display(description=_("paid for generation"))
    def paid_generation(self, quote: Quote) -> str:
        generation_id = getattr(quote, "paid_generation_id", None)
        if generation_id is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:generations_generation_change", args=[generation_id]),
            str(generation_id)[:8],
        )

    @admin.display(description=_("owner"))
    def owner_link(self, quote: Quote) -> str:
        return format_html(
            '<a href="{}">{}</a> · <a href="{}?{}">{}</a>',
            reverse("admin:accounts_user_change", args=[quote.owner_id]),
            quote.owner,
            reverse("admin:generations_quote_changelist"),
            urlencode({"owner__id__exact": quote.owner_id}),
            _("all their quotes"),
        )

    @admin.display(description=_("price breakdown"))
    def breakdown(self, quote: Quote) -> str:
        columns = itemgetter("label", "value", "seconds", "credits_per_second", "credits")
        return format_html_join(
            "",
            "<div>{}: {} · {} s x {} = {}</div>",
            map(columns, pricing.describe(quote.price_breakdown)),
        )


# --- Pricing -------------------------------------------------------------------------------


class PricingRuleChangeInline(ReadOnlyInline):
    model = PricingRuleChange
    fields = ("changed_at", "changed_by", "changes")
    verbose_name_plural = "change history"


@admin.register(PricingRule)
class PricingRuleAdmin(admin.ModelAdmin):
    """Changes apply to quotes made afterwards; accepted generations keep their frozen
    cost. Rules are deactivated, never deleted, so their history stays."""

    list_display = (
        "endpoint",
        "resolution",
        "generate_audio",
        "credits_per_second",
        "usd_per_second",
        "active",
        "updated_at",
        "updated_by",
    )
    list_filter = ("active", "resolution", "generate_audio", "endpoint")
    list_select_related = ("updated_by",)
    search_fields = ("endpoint",)
    fields = (
        "endpoint",
        "resolution",
        "generate_audio",
        "credits_per_second",
        "active",
        "updated_at",
        "updated_by",
    )
    readonly_fields = ("updated_at", "updated_by")
    inlines = [PricingRuleChangeInline]

    @admin.display(description=f"USD/s at {CREDITS_PER_USD} credits per dollar")
    def usd_per_second(self, rule: PricingRule) -> str:
        return f"${rule.credits_per_second / CREDITS_PER_USD:.2f}"

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request, obj: PricingRule, form, change: bool) -> None:
        pricing_history.save_rule(rule=obj, actor=signed_in_user(request))

    def log_addition(self, request, obj, message):
        """pricing_history.save_rule records the change with its old and new values."""

    def log_change(self, request, obj, message):
        """pricing_history.save_rule records the change with its old and new values."""


@admin.register(PricingRuleChange)
class PricingRuleChangeAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "rule", "changed_by", "changes")
    list_filter = ("changed_at",)
    list_select_related = ("rule", "changed_by")
    search_fields = ("changed_by__username",)


# --- What fal bills ------------------------------------------------------------------------


class ChangeReasonForm(forms.ModelForm):
    """A staff edit of money rules carries a reason, recorded in the audit trail."""

    change_reason = forms.CharField(
        label="Reason for this change",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="Recorded in the audit trail with your name.",
    )

    def clean_change_reason(self) -> str:
        return required_reason(self.cleaned_data["change_reason"])


class FalPriceForm(ChangeReasonForm):
    source_url = forms.URLField(required=False, max_length=500, assume_scheme="https")

    class Meta:
        model = FalPrice
        fields = (
            "endpoint",
            "resolution",
            "generate_audio",
            "usd_per_second",
            "active",
            "source_url",
            "source",
        )


@admin.register(FalPrice)
class FalPriceAdmin(admin.ModelAdmin):
    """fal's own price per second. A change applies to jobs submitted afterwards; a
    generation keeps the fal cost recorded at its submit. Deactivate, never delete."""

    form = FalPriceForm
    list_display = (
        "endpoint",
        "resolution",
        "generate_audio",
        "usd_per_second",
        "active",
        "confirmed",
        "updated_at",
        "updated_by",
    )
    list_filter = ("active", "resolution", "generate_audio", "endpoint")
    list_select_related = ("updated_by",)
    search_fields = ("endpoint", "source")
    readonly_fields = ("updated_at", "updated_by")

    @admin.display(boolean=True, description="confirmed on a fal page")
    def confirmed(self, price: FalPrice) -> bool:
        return price.confirmed

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request, obj: FalPrice, form, change: bool) -> None:
        costs.save_fal_price(
            price=obj, actor=signed_in_user(request), reason=form.cleaned_data["change_reason"]
        )

    def log_addition(self, request, obj, message):
        """costs.save_fal_price records the change, with its reason."""

    def log_change(self, request, obj, message):
        """costs.save_fal_price records the change, with its reason."""


class RefundPolicyForm(ChangeReasonForm):
    class Meta:
        model = RefundPolicy
        fields = ("reason", "action", "share_percent")


@admin.register(RefundPolicy)
class RefundPolicyAdmin(admin.ModelAdmin):
    """Who pays for a video fal billed but the user did not get: per reason, refund (the
    default, also with no row), charge in full, or charge a share of the quote. Applies to
    generations settled afterwards; never more than the quote."""

    form = RefundPolicyForm
    list_display = ("reason", "action", "share_percent", "updated_at", "updated_by")
    list_select_related = ("updated_by",)
    readonly_fields = ("updated_at", "updated_by")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # set "Refund the user" instead, so the change is recorded

    def save_model(self, request, obj: RefundPolicy, form, change: bool) -> None:
        costs.save_refund_policy(
            policy=obj, actor=signed_in_user(request), reason=form.cleaned_data["change_reason"]
        )

    def log_addition(self, request, obj, message):
        """costs.save_refund_policy records the change, with its reason."""

    def log_change(self, request, obj, message):
        """costs.save_refund_policy records the change, with its reason."""


# --- Blocked terms -------------------------------------------------------------------------


class BlockedTermForm(forms.ModelForm):
    class Meta:
        model = BlockedTerm
        fields = ("term", "note", "active")
        help_texts = {
            "term": "A word or phrase, matched as whole words in any case, accents, "
            "full-width or spaced-out spelling. End it with * to match words starting with "
            "it (nude* matches nudes); start it with * for words ending with it.",
        }

    def clean_term(self) -> str:
        try:
            return moderation.validate_term(self.cleaned_data["term"])
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(BlockedTerm)
class BlockedTermAdmin(admin.ModelAdmin):
    form = BlockedTermForm
    list_display = ("term", "normalized", "active", "note", "created_by", "created_at")
    list_filter = ("active",)
    list_select_related = ("created_by",)
    search_fields = ("term", "note")
    readonly_fields = ("created_by", "created_at")

    @admin.display(description="matched as")
    def normalized(self, term: BlockedTerm) -> str:
        return moderation.normalize_text(term.term)

    def save_model(self, request, obj: BlockedTerm, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
