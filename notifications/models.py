"""Who wants which emails, and which emails went out.

`SentEmail` is the sent-log: a row is claimed before an email is sent, and its unique
constraints make each email go out at most once, whatever runs twice (a task redelivered,
a webhook and a poll finishing the same generation).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class NotificationPreference(models.Model):
    """A user's switches. A user without a row has the defaults (everything on, the
    default threshold): rows are written only when someone changes something."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    video_emails = models.BooleanField(
        default=True, help_text="An email when a video is ready or has failed."
    )
    low_balance_emails = models.BooleanField(
        default=True, help_text="An email when available credits fall below the threshold."
    )
    low_balance_threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Credits. Empty: the price of one video with the default options, "
        "following price changes.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "email preference"

    def __str__(self) -> str:
        return f"Email preferences of {self.user_id}"


class SentEmail(models.Model):
    """One notification email, claimed before it is sent.

    - A generation's outcome (ready or failed): one per generation.
    - A receipt: one per purchase.
    - Low balance: one "open" row per user (`rearmed_at` empty) while the balance stays
      low; the next one needs credits added that lifted the available balance to the
      threshold again, which closes it (`notifications.low_balance`)."""

    class Kind(models.TextChoices):
        VIDEO_READY = "video_ready", "Video ready"
        VIDEO_FAILED = "video_failed", "Video failed"
        LOW_BALANCE = "low_balance", "Low balance"
        PURCHASE_RECEIPT = "purchase_receipt", "Purchase receipt"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sent_emails"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    to = models.EmailField(max_length=254)
    generation = models.ForeignKey(
        "generations.Generation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    # The primary key of the accounts.Purchase a receipt is for (a key, not a foreign key:
    # purchases belong to the payments code, which this app only reads).
    purchase_ref = models.CharField(max_length=64, blank=True)
    # Low balance: the ledger entry the low balance was seen after, and when credits added
    # later lifted the available balance back to the threshold.
    ledger_entry = models.ForeignKey(
        "accounts.LedgerEntry",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    available = models.BigIntegerField(null=True, blank=True)
    threshold = models.BigIntegerField(null=True, blank=True)
    rearmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    kind__in=["video_ready", "video_failed", "low_balance", "purchase_receipt"]
                ),
                name="sentemail_kind_valid",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["video_ready", "video_failed"])
                | Q(generation__isnull=False),
                name="sentemail_outcome_has_generation",
            ),
            models.CheckConstraint(
                condition=~Q(kind="purchase_receipt") | ~Q(purchase_ref=""),
                name="sentemail_receipt_has_purchase",
            ),
            models.CheckConstraint(
                condition=~Q(kind="low_balance") | Q(ledger_entry__isnull=False),
                name="sentemail_low_balance_has_entry",
            ),
            models.UniqueConstraint(
                fields=["generation"],
                condition=Q(generation__isnull=False),
                name="sentemail_one_per_generation",
            ),
            models.UniqueConstraint(
                fields=["purchase_ref"],
                condition=Q(kind="purchase_receipt"),
                name="sentemail_one_receipt_per_purchase",
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(kind="low_balance", rearmed_at__isnull=True),
                name="sentemail_one_open_low_balance",
            ),
        ]
        indexes = [models.Index(fields=["user", "kind", "-created_at"], name="sentemail_user_kind")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to}"
