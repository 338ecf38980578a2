from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length, Lower
from django.db.models.lookups import Exact
from django.utils.translation import pgettext_lazy

from accounts.time_zones import validate_time_zone


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class User(AbstractUser):
    email = models.EmailField("email address", unique=True)
    # Signs the callbacks we POST to integrators (HMAC-SHA256); rotatable.
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret)
    suspension_reason = models.CharField(max_length=500, blank=True)
    # An IANA zone name (accounts.time_zones); empty means the site's TIME_ZONE.
    time_zone = models.CharField(
        max_length=64, blank=True, default="", validators=[validate_time_zone]
    )
    # A code of settings.LANGUAGES; empty means the browser's or the site's language.
    language = models.CharField(max_length=16, blank=True, default="")
    # Staff's say in the fair share of fal's slots (generations.fair_share): a user of
    # weight 2 may start twice the seconds of video per turn of one of weight 1.
    share_weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Share of the video service's slots while others wait too (1 = everyone's "
        "default; 2 = twice as many seconds of video per turn).",
    )

    REQUIRED_FIELDS = ["email"]

    def __str__(self) -> str:
        return self.username


class CreditAccount(models.Model):
    """A user's credits. `balance` and `reserved` cache the ledger; only
    `accounts.ledger` writes them."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_account"
    )
    balance = models.BigIntegerField(default=0)
    reserved = models.BigIntegerField(default=0)
    # Credits a refunded or disputed purchase took back that were already spent: the next
    # credits in pay them first, and no generation is accepted until they are paid.
    owed = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(reserved__gte=0), name="account_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(balance__gte=F("reserved")), name="account_balance_gte_reserved"
            ),
            models.CheckConstraint(condition=Q(owed__gte=0), name="account_owed_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.available} available)"

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class LedgerEntry(models.Model):
    """One movement of credits. Append-only: nothing updates or deletes an entry.

    `amount` is the signed change to the balance, `reserved_change` the signed change to
    the reserved credits. A hold reserves (0, +n); a capture spends what it held (-n, -n);
    a release frees it (0, -n).
    """

    class Kind(models.TextChoices):
        GRANT = "grant", pgettext_lazy("ledger entry", "Grant")
        TOPUP = "topup", pgettext_lazy("ledger entry", "Top-up")
        HOLD = "hold", pgettext_lazy("ledger entry", "Hold")
        CAPTURE = "capture", pgettext_lazy("ledger entry", "Capture")
        RELEASE = "release", pgettext_lazy("ledger entry", "Release")
        REFUND = "refund", pgettext_lazy("ledger entry", "Refund")
        ADJUSTMENT = "adjustment", pgettext_lazy("ledger entry", "Adjustment")

    # No index of its own: the (account, -created_at) index starts with it (one index
    # fewer to write on every movement).
    account = models.ForeignKey(
        CreditAccount, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField()
    reserved_change = models.BigIntegerField(default=0)
    balance_after = models.BigIntegerField()
    reserved_after = models.BigIntegerField()
    generation = models.ForeignKey(
        "generations.Generation",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    # Voucher and actor: indexed only where set (Meta.indexes); most entries have neither.
    voucher = models.ForeignKey(
        "accounts.Voucher",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
        db_index=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The staff member who made this entry, if any.",
        db_index=False,
    )
    reason = models.CharField(max_length=500, blank=True)
    # Unique by a constraint (Meta), which on PostgreSQL is one index, where unique=True
    # adds a second one for LIKE that nothing uses.
    idempotency_key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        # Every movement writes each of these: only what a lookup needs.
        indexes = [
            models.Index(fields=["account", "-created_at"]),
            models.Index(
                fields=["voucher"], condition=Q(voucher__isnull=False), name="ledger_voucher"
            ),
            models.Index(fields=["actor"], condition=Q(actor__isnull=False), name="ledger_actor"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="ledger_idempotency_key"),
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        "grant",
                        "topup",
                        "hold",
                        "capture",
                        "release",
                        "refund",
                        "adjustment",
                    ]
                ),
                name="ledger_kind_valid",
            ),
            # One hold, then at most one settlement (capture or release), per generation.
            models.UniqueConstraint(
                fields=["generation"],
                condition=Q(kind="hold"),
                name="ledger_one_hold_per_generation",
            ),
            models.UniqueConstraint(
                fields=["generation"],
                condition=Q(kind__in=["capture", "release"]),
                name="ledger_one_settlement_per_generation",
            ),
            models.UniqueConstraint(
                fields=["generation"],
                condition=Q(kind="refund"),
                name="ledger_one_refund_per_generation",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["hold", "capture", "release", "refund"])
                | Q(generation__isnull=False),
                name="ledger_settlement_has_generation",
            ),
            models.CheckConstraint(
                condition=~Q(kind__in=["grant", "topup", "refund"]) | Q(amount__gt=0),
                name="ledger_credit_is_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount:+d} ({self.account.user})"

    @property
    def available_change(self) -> int:
        return self.amount - self.reserved_change


class ApiToken(models.Model):
    """An API token. The secret is shown once; only its SHA-256 is stored, found by its
    public prefix."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} (veo_{self.prefix}…)"


class Voucher(models.Model):
    """A code worth credits, redeemable by up to `max_uses` different users."""

    code = models.CharField(max_length=40, unique=True)
    amount = models.PositiveIntegerField()
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(uses__lte=F("max_uses")), name="voucher_uses_lte_max"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="voucher_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return self.code


class VoucherRedemption(models.Model):
    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="redemptions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="voucher_redemptions"
    )
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["voucher", "user"], name="voucher_once_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.voucher} redeemed by {self.user}"


class CreditPack(models.Model):
    """Credits sold for money through Stripe Checkout. `price_cents` is in the currency's
    minor unit (cents, or yen for a zero-decimal currency), as Stripe takes it."""

    name = models.CharField(max_length=100)
    credits = models.PositiveIntegerField()
    price_cents = models.PositiveIntegerField(help_text="In the currency's minor unit.")
    currency = models.CharField(
        max_length=3,
        default="usd",
        validators=[RegexValidator(r"^[a-z]{3}$", "A lowercase ISO 4217 code, e.g. usd.")],
    )
    active = models.BooleanField(default=True)
    sort_order = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sort_order", "price_cents", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="pack_credits_gt_0"),
            models.CheckConstraint(condition=Q(price_cents__gt=0), name="pack_price_gt_0"),
            models.CheckConstraint(
                condition=Q(Exact(Length("currency"), 3), currency=Lower("currency")),
                name="pack_currency_iso_lower",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.credits} credits)"


class Purchase(models.Model):
    """One Stripe Checkout Session for one pack: what was sold (copied from the pack when
    the session was made), Stripe's ids, and what a refund or dispute took back. Written
    only by `accounts.payments`; credits move only through `accounts.ledger`."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("purchase", "Waiting for payment")
        PROCESSING = "processing", pgettext_lazy("purchase", "Payment processing")
        PAID = "paid", pgettext_lazy("purchase", "Paid")
        FAILED = "failed", pgettext_lazy("purchase", "Failed")
        EXPIRED = "expired", pgettext_lazy("purchase", "Expired")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases"
    )
    pack = models.ForeignKey(CreditPack, on_delete=models.PROTECT, related_name="purchases")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    credits = models.PositiveIntegerField()
    amount_cents = models.PositiveIntegerField(help_text="In the currency's minor unit.")
    currency = models.CharField(max_length=3)
    stripe_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    grant_entry = models.OneToOneField(
        LedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The largest refunded and disputed amounts Stripe has reported (minor units; its
    # numbers are cumulative, so a late or repeated event never counts twice).
    refunded_cents = models.PositiveIntegerField(default=0)
    disputed_cents = models.PositiveIntegerField(default=0)
    # What was taken back of `credits`: from the balance, and what was spent already and
    # so became owed (CreditAccount.owed).
    credits_taken_back = models.PositiveIntegerField(default=0)
    credits_owed = models.PositiveIntegerField(default=0)
    failure_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "processing", "paid", "failed", "expired"]),
                name="purchase_status_valid",
            ),
            models.CheckConstraint(condition=Q(credits__gt=0), name="purchase_credits_gt_0"),
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="purchase_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(credits_taken_back__gte=0)
                & Q(credits_owed__gte=0)
                & Q(credits__gte=F("credits_taken_back") + F("credits_owed")),
                name="purchase_reversal_lte_credits",
            ),
            models.CheckConstraint(
                condition=~Q(status="paid")
                | (Q(paid_at__isnull=False) & Q(grant_entry__isnull=False)),
                name="purchase_paid_has_grant",
            ),
        ]

    def __str__(self) -> str:
        return f"Purchase {self.pk}: {self.credits} credits ({self.get_status_display()})"

    @property
    def is_paid(self) -> bool:
        return self.status == self.Status.PAID

    @property
    def credits_reversed(self) -> int:
        return self.credits_taken_back + self.credits_owed
