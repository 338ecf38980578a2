from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from generations import catalogue, states


class Duration(models.TextChoices):
    S4 = "4s", _("4 seconds")
    S6 = "6s", _("6 seconds")
    S8 = "8s", _("8 seconds")


class Resolution(models.TextChoices):
    P720 = "720p", "720p"
    P1080 = "1080p", "1080p"
    K4 = "4k", "4K"


class AspectRatio(models.TextChoices):
    LANDSCAPE = "16:9", _("16:9 landscape")
    PORTRAIT = "9:16", _("9:16 portrait")
    AUTO = "auto", _("auto (from the image)")  # the models that take images (the catalogue)


class PricingRule(models.Model):
    """Credits per second of video for one endpoint, resolution and audio choice.
    Only active rules quote; a resolution with no active rule cannot be ordered."""

    endpoint = models.CharField(max_length=200, default="fal-ai/veo3.1/image-to-video")
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    generate_audio = models.BooleanField()
    credits_per_second = models.PositiveIntegerField()
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["endpoint", "resolution", "generate_audio"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "resolution", "generate_audio"],
                condition=Q(active=True),
                name="pricing_one_active_rule",
            ),
            models.CheckConstraint(
                condition=Q(credits_per_second__gt=0), name="pricing_positive_rate"
            ),
        ]

    def __str__(self) -> str:
        audio = "audio" if self.generate_audio else "no audio"
        return f"{self.endpoint} {self.resolution} {audio}: {self.credits_per_second}/s"


class PricingRuleChange(models.Model):
    """Who changed a pricing rule, when, and from what to what."""

    rule = models.ForeignKey(PricingRule, on_delete=models.CASCADE, related_name="changes")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    changes = models.JSONField(help_text='{"field": [old, new], ...}')

    class Meta:
        ordering = ["-changed_at"]

    def __str__(self) -> str:
        return f"{self.rule} changed at {self.changed_at:%Y-%m-%d %H:%M}"


class BlockedTerm(models.Model):
    """A word or phrase refused in prompts (matched case-insensitively after NFKC)."""

    term = models.CharField(max_length=200, unique=True)
    note = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["term"]

    def __str__(self) -> str:
        return self.term


class GenerationQuerySet(models.QuerySet):
    def visible_to(self, user) -> GenerationQuerySet:
        """Everyone's for staff who may view generations (moderators, superusers);
        otherwise one's own."""
        if user.is_staff and user.has_perm("generations.view_generation"):
            return self
        return self.filter(owner=user)

    def in_flight(self) -> GenerationQuerySet:
        return self.filter(status__in=Generation.IN_FLIGHT)


def _private_upload_path(instance: Generation, filename: str) -> str:
    return f"private/inputs/{instance.owner_id}/{instance.pk}/{filename}"


def _private_video_path(instance: Generation, filename: str) -> str:
    return f"private/videos/{instance.owner_id}/{instance.pk}.mp4"


class Generation(models.Model):
    """One image + prompt -> video job, from acceptance to a stored video.

    Status moves only forward, only through `generations.services`, and only by the one
    table of `generations.states`, each step a conditional UPDATE from the statuses it
    allows. `submitting` is internal (shown as `pending`): a submit to fal is under way, or
    its outcome is unknown. Templates, the admin and the API ask the properties below,
    never compare status strings.
    """

    Status = states.Status

    class Moderation(models.TextChoices):
        VISIBLE = "visible", "Visible"
        FLAGGED = "flagged", "Flagged for review"
        HIDDEN = "hidden", "Hidden"

    IN_FLIGHT = states.IN_FLIGHT
    FINAL = states.FINAL

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: gen_owner_created and gen_owner_status start with it (one
    # index fewer to write on every accept).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="generations",
        db_index=False,
    )
    prompt = models.TextField()
    image = models.FileField(upload_to=_private_upload_path, blank=True, max_length=300)
    image_url = models.URLField(max_length=2048, blank=True)
    aspect_ratio = models.CharField(max_length=8, choices=AspectRatio.choices)
    duration = models.CharField(max_length=4, choices=Duration.choices)
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    generate_audio = models.BooleanField()
    endpoint = models.CharField(max_length=200)
    # The catalogue's model (fal's endpoint id) the request chose; what it accepts is
    # `generations.catalogue`. Its optional arguments as given (negative_prompt, seed,
    # auto_fix, safety_tolerance); absent ones are left to fal's defaults.
    model = models.CharField(max_length=200, default=catalogue.DEFAULT_MODEL)
    model_options = models.JSONField(default=dict, blank=True)
    cost_credits = models.PositiveIntegerField(help_text="Quoted and frozen at acceptance.")
    price_breakdown = models.JSONField(
        default=list,
        blank=True,
        help_text="The price's line items at acceptance (generations.pricing.LineItem); "
        "empty for generations accepted before they were recorded.",
    )
    # The quote that set `cost_credits` (a quote pays for one generation), saved by accept
    # in the transaction that claims it; null when the price then was charged.
    quote = models.OneToOneField(
        "Quote",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="generation",
        help_text="The quote whose price it paid; empty when it paid the price at acceptance.",
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    callback_url = models.URLField(max_length=2048, blank=True)

    # What fal told us.
    # Indexed only once set (Meta.indexes: gen_fal_request): none is at accept.
    fal_request_id = models.CharField(max_length=100, blank=True)
    fal_queue_position = models.IntegerField(null=True, blank=True)
    fal_logs = models.JSONField(default=list, blank=True)
    fal_video_url = models.URLField(max_length=2048, blank=True)
    fal_submit_count = models.PositiveSmallIntegerField(
        default=0, help_text="Submit POSTs sent to fal; above 1 a duplicate job may exist."
    )
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    video = models.FileField(upload_to=_private_video_path, blank=True, max_length=300)
    video_bytes = models.BigIntegerField(null=True, blank=True)

    moderation_state = models.CharField(
        max_length=10, choices=Moderation.choices, default=Moderation.VISIBLE
    )
    moderation_reason = models.CharField(max_length=500, blank=True)
    # Indexed only where set (Meta.indexes: gen_moderated_by): most videos never are.
    moderated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    moderated_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Worker bookkeeping.
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Submit attempts.")
    finish_failures = models.PositiveSmallIntegerField(
        default=0, help_text="Failed copies of the finished video."
    )
    next_poll_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is submitting or finishing until then."
    )
    deadline_at = models.DateTimeField(null=True, blank=True)
    callback_delivered_at = models.DateTimeField(null=True, blank=True)

    # Money fal bills us, and who paid for a video fal billed but we did not deliver.
    fal_cost_usd = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="What fal charges for this job (seconds x the active fal price), recorded "
        "at submit; empty if no price was active.",
    )
    settlement_policy = models.CharField(
        max_length=16,
        blank=True,
        help_text='The refund policy applied to a video fal billed: "refund", "charge" or '
        '"share:<percent>"; empty when none applied.',
    )

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="gen_owner_created"),
            models.Index(fields=["owner", "status"], name="gen_owner_status"),
            models.Index(fields=["status", "next_poll_at"], name="gen_status_next_poll"),
            models.Index(fields=["moderation_state", "-created_at"], name="gen_moderation"),
            models.Index(
                fields=["fal_request_id"], condition=~Q(fal_request_id=""), name="gen_fal_request"
            ),
            models.Index(
                fields=["moderated_by"],
                condition=Q(moderated_by__isnull=False),
                name="gen_moderated_by",
            ),
            # Our own queue for fal's slots (generations.fair_share), read in this order.
            models.Index(
                fields=["created_at", "id"],
                condition=Q(status="waiting"),
                name="gen_waiting_queue",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=list(states.Status.values)),
                name="gen_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(moderation_state__in=["visible", "flagged", "hidden"]),
                name="gen_moderation_valid",
            ),
            models.CheckConstraint(
                condition=~Q(moderation_state="hidden") | ~Q(moderation_reason=""),
                name="gen_hidden_has_reason",
            ),
            models.CheckConstraint(condition=Q(cost_credits__gt=0), name="gen_cost_positive"),
            # The models that take one image have it (an upload or a URL); the others keep
            # theirs as GenerationImage rows.
            models.CheckConstraint(
                condition=~Q(model__in=catalogue.SINGLE_IMAGE_MODELS)
                | ~Q(image="")
                | ~Q(image_url=""),
                name="gen_has_image",
            ),
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True) | Q(completed_at__gte=F("created_at")),
                name="gen_completed_after_created",
            ),
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="gen_idempotency_key_per_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pk} ({self.status})"

    @property
    def public_status(self) -> str:
        """What the API and the portal show (`states.SHOWN_AS`): `submitting` reads as
        `pending`, `waiting` (in our own queue for one of fal's slots) as `queued`."""
        return states.public(self.status)

    @property
    def is_final(self) -> bool:
        """Succeeded, failed or canceled: no way out (`states.TRANSITIONS`)."""
        return self.status in states.FINAL

    @property
    def is_cancelable(self) -> bool:
        """fal has not started rendering it: the owner or staff may cancel it."""
        return self.status in states.CANCELABLE

    @property
    def has_playable_video(self) -> bool:
        """Its video is stored and its owner may watch it (not hidden by moderation)."""
        return self.status == self.Status.SUCCEEDED and bool(self.video) and not self.is_hidden

    # One question per public status, for templates and the admin.
    @property
    def is_pending(self) -> bool:
        """Waiting to be sent to fal, or being sent (`pending` or `submitting`)."""
        return self.public_status == self.Status.PENDING

    @property
    def is_queued(self) -> bool:
        """In a line: fal's (`queued`), or ours for one of fal's slots (`waiting`)."""
        return self.public_status == self.Status.QUEUED

    @property
    def is_waiting(self) -> bool:
        """In our own queue for one of fal's slots (`generations.fair_share`)."""
        return self.status == self.Status.WAITING

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING

    @property
    def is_succeeded(self) -> bool:
        return self.status == self.Status.SUCCEEDED

    @property
    def is_failed(self) -> bool:
        return self.status == self.Status.FAILED

    @property
    def is_canceled(self) -> bool:
        return self.status == self.Status.CANCELED

    @property
    def is_hidden(self) -> bool:
        return self.moderation_state == self.Moderation.HIDDEN

    @property
    def duration_seconds(self) -> int:
        return int(self.duration.rstrip("s"))

    @property
    def policy_charged_credits(self) -> int:
        """Credits the applied refund policy charged (0 when it refunded or none applied)."""
        action, _, percent = self.settlement_policy.partition(":")
        return RefundPolicy.credits_to_charge(
            action=action,
            percent=int(percent) if percent.isdigit() else None,
            cost=self.cost_credits,
        )


def _private_input_path(instance: GenerationImage, filename: str) -> str:
    generation = instance.generation
    return f"private/inputs/{generation.owner_id}/{generation.pk}/{filename}"


class GenerationImage(models.Model):
    """One input image of a model that takes several (first + last frame, references):
    an upload stored like a generation's `image`, or a public https URL the worker fetches
    and checks as it does a generation's `image_url`. `slot` is fal's field name."""

    class Slot(models.TextChoices):
        FIRST_FRAME = "first_frame_url", "First frame"
        LAST_FRAME = "last_frame_url", "Last frame"
        REFERENCE = "image_urls", "Reference image"

    generation = models.ForeignKey(
        Generation, on_delete=models.CASCADE, related_name="input_images"
    )
    slot = models.CharField(max_length=20, choices=Slot.choices)
    position = models.PositiveSmallIntegerField(default=0)
    image = models.FileField(upload_to=_private_input_path, blank=True, max_length=300)
    image_url = models.URLField(max_length=2048, blank=True)

    class Meta:
        ordering = ["generation", "slot", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["generation", "slot", "position"], name="gen_image_one_per_slot"
            ),
            models.CheckConstraint(
                condition=~Q(image="") | ~Q(image_url=""), name="gen_image_has_image"
            ),
            models.CheckConstraint(
                condition=Q(slot__in=["first_frame_url", "last_frame_url", "image_urls"]),
                name="gen_image_slot_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.generation_id} {self.slot}[{self.position}]"


class QuoteQuerySet(models.QuerySet):
    def in_state(self, state: str, now: datetime) -> QuoteQuerySet:
        """The quotes in `state` (a `Quote.State`) at `now`: `Quote.state_at`'s rule."""
        if state == Quote.State.USED:
            return self.filter(used_at__isnull=False)
        unused = self.filter(used_at__isnull=True)
        if state == Quote.State.EXPIRED:
            return unused.filter(expires_at__lte=now)
        return unused.filter(expires_at__gt=now)


class Quote(models.Model):
    """A price promised to one user for one model and its options until `expires_at`:
    a create that carries it is charged exactly `cost_credits`, whatever the prices are
    then. Single-use: `used_at` is set by the accept that spends it, in its transaction
    (generations.quotes)."""

    class State(models.TextChoices):
        OPEN = "open", pgettext_lazy("quote state", "open")
        USED = "used", pgettext_lazy("quote state", "used")
        EXPIRED = "expired", pgettext_lazy("quote state", "expired unused")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quotes"
    )
    model = models.CharField(max_length=200, help_text="fal's endpoint id.")
    options = models.JSONField(help_text="The options that set the price and the frame.")
    cost_credits = models.PositiveIntegerField()
    price_breakdown = models.JSONField(default=list, help_text="The price's line items.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    objects = QuoteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(cost_credits__gt=0), name="quote_cost_positive"),
        ]

    def __str__(self) -> str:
        return f"quote {self.pk}: {self.cost_credits} credits until {self.expires_at:%H:%M}"

    def state_at(self, now: datetime) -> Quote.State:
        """Used once it paid for a generation; otherwise open until `expires_at`, expired
        from then on (`QuoteQuerySet.in_state` selects by the same rule)."""
        if self.used_at is not None:
            return Quote.State.USED
        return Quote.State.EXPIRED if self.expires_at <= now else Quote.State.OPEN


class CallbackAttempt(models.Model):
    """One POST of a finished generation to its integrator's callback_url."""

    generation = models.ForeignKey(
        Generation, on_delete=models.CASCADE, related_name="callback_attempts"
    )
    attempt = models.PositiveSmallIntegerField()
    url = models.URLField(max_length=2048)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    succeeded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generation", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["generation", "attempt"], name="callback_attempt_once"),
        ]

    def __str__(self) -> str:
        return f"callback {self.attempt} for {self.generation_id}: {self.status_code or self.error}"


class WorkerLease(models.Model):
    """A named lease held by one worker at a time (the self-re-arming status sweep).
    Kept in the database so that every process and broker agree on it."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.expires_at}"


class FalAccount(models.Model):
    """What we know about our own fal account (one row, pk=1): whether dispatch is paused
    because fal refuses our submits (account locked, billing), and whether our credentials
    are failing on polls. Staff see the raw causes; users only that videos are delayed."""

    class PauseReason(models.TextChoices):
        NONE = "", "Not paused"
        ACCOUNT_LOCKED = "account_locked", "fal locked the account"
        CREDENTIALS = "credentials", "fal refused our credentials"
        STAFF = "staff", "Paused by staff"

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    dispatch_paused = models.BooleanField(default=False)
    pause_reason = models.CharField(
        max_length=20, choices=PauseReason.choices, blank=True, default=""
    )
    pause_message = models.TextField(blank=True, help_text="fal's own words (staff only).")
    paused_at = models.DateTimeField(null=True, blank=True)
    next_probe_at = models.DateTimeField(null=True, blank=True)
    credentials_failing_since = models.DateTimeField(
        null=True, blank=True, help_text="Since when fal answers 401/403 to our polls."
    )
    credentials_message = models.TextField(blank=True)
    webhook_user_id_seen = models.CharField(
        max_length=100, blank=True, help_text="The fal user id the first verified webhook carried."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "fal account"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="fal_account_singleton"),
        ]

    def __str__(self) -> str:
        return "fal account (dispatch paused)" if self.dispatch_paused else "fal account"

    @classmethod
    def load(cls) -> FalAccount:
        account, _ = cls.objects.get_or_create(pk=1)
        return account


class FalPrice(models.Model):
    """What fal charges us per second of video for one endpoint, resolution and audio
    choice (fal's own list price, in US dollars). Staff keep it in line with fal's model
    pages; the active row is read when a job is submitted."""

    endpoint = models.CharField(max_length=200)
    resolution = models.CharField(max_length=8, choices=Resolution.choices)
    generate_audio = models.BooleanField()
    usd_per_second = models.DecimalField(max_digits=8, decimal_places=4)
    active = models.BooleanField(default=True)
    source_url = models.URLField(max_length=500, blank=True)
    source = models.TextField(
        blank=True,
        help_text="Where the rate comes from, quoted; starts with UNCONFIRMED when no fal "
        "page states it.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["endpoint", "resolution", "generate_audio"]
        verbose_name = "fal price"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "resolution", "generate_audio"],
                condition=Q(active=True),
                name="fal_price_one_active",
            ),
            models.CheckConstraint(condition=Q(usd_per_second__gt=0), name="fal_price_positive"),
        ]

    def __str__(self) -> str:
        audio = "audio" if self.generate_audio else "no audio"
        return f"{self.endpoint} {self.resolution} {audio}: ${self.usd_per_second}/s"

    @property
    def confirmed(self) -> bool:
        return not self.source.lstrip().upper().startswith("UNCONFIRMED")


class RefundPolicy(models.Model):
    """Who pays for a video fal billed but the user did not get, per reason. No row for a
    reason means refund (the default). Any other failure is always refunded."""

    class Reason(models.TextChoices):
        CANCELED_AFTER_START = (
            "canceled_after_start",
            "Canceled by the user after fal started rendering",
        )
        CONTENT_POLICY = "content_policy", "Refused by fal's content policy"

    class Action(models.TextChoices):
        REFUND = "refund", "Refund the user"
        CHARGE = "charge", "Charge the user in full"
        SHARE = "share", "Charge the user a share"

    reason = models.CharField(max_length=32, choices=Reason.choices, unique=True)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.REFUND)
    share_percent = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="For a share: the percent of the quote charged, 1-99."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["reason"]
        verbose_name_plural = "refund policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(reason__in=["canceled_after_start", "content_policy"]),
                name="refund_policy_reason_valid",
            ),
            models.CheckConstraint(
                condition=Q(action="share", share_percent__gte=1, share_percent__lte=99)
                | (Q(action__in=["refund", "charge"]) & Q(share_percent__isnull=True)),
                name="refund_policy_share_1_99",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_reason_display()}: {self.label}"

    def clean(self) -> None:
        if self.action == self.Action.SHARE:
            if self.share_percent is None or not 1 <= self.share_percent <= 99:
                raise ValidationError({"share_percent": "A share is a percent from 1 to 99."})
        elif self.share_percent is not None:
            raise ValidationError({"share_percent": "Only a share takes a percent."})

    @property
    def label(self) -> str:
        """As recorded on the generation: "refund", "charge" or "share:<percent>"."""
        return f"share:{self.share_percent}" if self.action == self.Action.SHARE else self.action

    @staticmethod
    def credits_to_charge(*, action: str, percent: int | None, cost: int) -> int:
        """Credits charged out of a frozen quote of `cost`: never more than the quote (a
        share rounds down)."""
        if action == RefundPolicy.Action.CHARGE:
            return cost
        if action == RefundPolicy.Action.SHARE and percent:
            return cost * min(max(percent, 0), 99) // 100
        return 0


class FairShareTurn(models.Model):
    """The deficit round robin's memory for one user with generations waiting for one of
    fal's slots (`generations.fair_share`, which alone writes it, under the FalAccount row
    lock): the seconds of video the user may still start before the turn moves on, and
    whether the turn is its now (`visiting`) or was last (`visited`). A row exists only
    while the user has generations waiting."""

    class Turn(models.TextChoices):
        NONE = "", "Not its turn"
        VISITING = "visiting", "Its turn now"
        VISITED = "visited", "Its turn just ended"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    deficit_seconds = models.PositiveIntegerField(default=0)
    turn = models.CharField(max_length=8, choices=Turn.choices, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["turn"], condition=~Q(turn=""), name="fair_share_one_turn"
            ),
            models.CheckConstraint(
                condition=Q(turn__in=["", "visiting", "visited"]), name="fair_share_turn_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.deficit_seconds} s{f' ({self.turn})' if self.turn else ''}"
