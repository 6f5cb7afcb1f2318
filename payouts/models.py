from django.conf import settings
from django.db import models
from django.db.models import Q


class Schedule(models.TextChoices):
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class CapabilityStatus(models.TextChoices):
    """A Connect capability's status as Stripe reports it (`account.capabilities`, the capability object)."""

    ACTIVE = "active", "Active"
    PENDING = "pending", "Pending (Stripe is reviewing)"
    INACTIVE = "inactive", "Inactive"
    UNREQUESTED = "unrequested", "Not requested"


class StripeListenerAccount(models.Model):
    """The listener's Stripe Connect Express account and what Stripe last told us about it.

    Transfers need the account's `transfers` capability to be active, which is not the same as
    `payouts_enabled` (the account's payouts to its bank): Stripe can review, pause or deactivate the
    capability on its own, after onboarding, and then refuses every transfer to the account
    (`insufficient_capabilities_for_transfer`). Payout runs pay only accounts whose capability is active."""

    listener = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stripe_listener_account"
    )
    stripe_account_id = models.CharField(max_length=255, unique=True)
    charges_enabled = models.BooleanField(default=False)
    payouts_enabled = models.BooleanField(default=False)
    details_submitted = models.BooleanField(default=False)
    requirements = models.JSONField(default=dict, blank=True)
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    # Read from Stripe with the account (never from an event's payload). Not known to be active is not
    # active: nothing is transferred until Stripe says so.
    transfers_capability = models.CharField(
        max_length=32, choices=CapabilityStatus.choices, default=CapabilityStatus.INACTIVE
    )
    # The capability's own `requirements.disabled_reason` while it is not active (`pending.review`,
    # `requirements.fields_needed`, `platform_paused`...): what the listener has to do, or wait for.
    transfers_capability_reason = models.CharField(max_length=255, blank=True, default="")
    # `created` of the last account.updated applied: Stripe does not keep order, older events are ignored.
    last_event_created = models.BigIntegerField(default=0)
    # The last payout from the connected account to the listener's bank that failed (payout.failed).
    payout_failure_code = models.CharField(max_length=64, blank=True, default="")
    payout_failure_message = models.TextField(blank=True, default="")
    payout_failed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.stripe_account_id

    @property
    def transfers_active(self) -> bool:
        return self.transfers_capability == CapabilityStatus.ACTIVE

    @property
    def can_receive_payouts(self) -> bool:
        """Whether a transfer to this account would be accepted: onboarded, payouts enabled and the
        transfers capability active."""
        return self.payouts_enabled and self.details_submitted and self.transfers_active


class ListenerPayoutSettings(models.Model):
    """How and when a listener is paid. Listeners without a row get the defaults (weekly, the
    configured minimum, not held)."""

    listener = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payout_settings")
    schedule = models.CharField(max_length=16, choices=Schedule.choices, default=Schedule.WEEKLY)
    # Cents; null means settings.PAYOUT_MINIMUM_CENTS.
    minimum_amount = models.BigIntegerField(null=True, blank=True)
    # An operator's hold: earnings accrue but are not paid until released.
    payouts_held = models.BooleanField(default=False)
    hold_reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        verbose_name_plural = "listener payout settings"


class Payout(models.Model):
    """What one listener is paid for one period of their schedule: one Stripe transfer."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing (transfer sent)"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        REVERSED = "reversed", "Reversed"

    listener = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payouts")
    schedule = models.CharField(max_length=16, choices=Schedule.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    amount = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    stripe_transfer_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    amount_reversed = models.BigIntegerField(default=0)
    # Of amount_reversed, what no clawback of ours asked for (an operator on Stripe's dashboard), and how
    # much of that later clawbacks have used instead of reversing again (payouts.services.reversals).
    amount_reversed_unrequested = models.BigIntegerField(default=0)
    unrequested_applied = models.BigIntegerField(default=0)
    failure_reason = models.TextField(blank=True, default="")
    # Transfer attempts started; each has its own idempotency key (see payouts.services.transfer_idempotency_key).
    attempts = models.PositiveIntegerField(default=0)
    # When the current attempt was committed as PROCESSING, just before Stripe was called.
    transfer_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-period_start", "-id")
        indexes = [models.Index(fields=("schedule", "period_start", "status"), name="payout_period_status")]
        constraints = [
            models.UniqueConstraint(
                fields=("listener", "schedule", "period_start"), name="payout_one_per_listener_period"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="payout_amount_never_negative"),
        ]

    def __str__(self) -> str:
        return f"Payout #{self.pk} {self.listener_id} {self.period_start}..{self.period_end} {self.status}"


class ListenerPayout(models.Model):
    """A listener's earning from one paid booking (their share, in cents), until it is paid out."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (session not completed or hold not passed)"
        PAYABLE = "payable", "Payable"
        HELD = "held", "Held (dispute or account)"
        PAID = "paid", "Paid out"
        CANCELLED = "cancelled", "Cancelled (refunded)"

    listener = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="earnings")
    booking = models.OneToOneField("booking.Booking", on_delete=models.PROTECT, related_name="earning")
    payment = models.OneToOneField("billing.Payment", on_delete=models.PROTECT, related_name="earning")
    amount = models.BigIntegerField()
    # Cents taken back by refunds or a lost dispute; what is owed is amount - amount_reversed.
    amount_reversed = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    payable_at = models.DateTimeField(null=True, blank=True)
    payout = models.ForeignKey(Payout, null=True, blank=True, on_delete=models.PROTECT, related_name="earnings")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=("listener", "status")),
            # The payout run's scan: unpaid earnings by listener.
            models.Index(fields=("listener", "payable_at"), condition=Q(payout__isnull=True), name="earning_unpaid"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="earning_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(amount_reversed__gte=0) & Q(amount_reversed__lte=models.F("amount")),
                name="earning_reversal_within_amount",
            ),
        ]

    @property
    def net_amount(self) -> int:
        return self.amount - self.amount_reversed


class Clawback(models.Model):
    """Taking back a listener's share that was already transferred to their Connect account, because
    the talker was refunded or won a dispute afterwards. `key` names the cause (`refund-12`,
    `dispute-3`), so one cause claws back once.

    The worker reverses the transfer on Stripe. When the connected account cannot cover it, the
    clawback becomes a debt: the ledger already carries it (the listener's payable is negative by that
    much) and the next payouts net it out through `ClawbackRecovery` rows, never paying a negative.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (reversal not yet attempted)"
        REVERSED = "reversed", "Reversed on Stripe"
        DEBT = "debt", "Debt (reversal refused; netted in the next payouts)"
        RECOVERED = "recovered", "Recovered from later payouts"
        CANCELLED = "cancelled", "Cancelled (the payout's transfer never went out)"

    key = models.CharField(max_length=100, unique=True)
    listener = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="clawbacks")
    earning = models.ForeignKey(ListenerPayout, on_delete=models.PROTECT, related_name="clawbacks")
    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="clawbacks")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    stripe_transfer_reversal_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    amount_recovered = models.BigIntegerField(default=0)
    # Of amount_recovered, what was owed to the listener again because the cause behind it failed
    # (a ListenerCredit, or back to the operator's unrequested reversal it had been taken from).
    amount_given_back = models.BigIntegerField(default=0)
    failure_reason = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Created by billing before clawbacks moved to payouts; the table kept its name.
        db_table = "billing_clawback"
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="clawback_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_recovered__gte=0) & Q(amount_recovered__lte=models.F("amount")),
                name="clawback_recovered_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(amount_given_back__gte=0) & Q(amount_given_back__lte=models.F("amount_recovered")),
                name="clawback_given_back_within_recovered",
            ),
        ]

    def __str__(self) -> str:
        return f"Clawback {self.key} {self.status} {self.amount}"

    @property
    def outstanding(self) -> int:
        """What the listener still owes on this clawback (only a debt owes anything)."""
        return self.amount - self.amount_recovered if self.status == self.Status.DEBT else 0


class ClawbackRecovery(models.Model):
    """The part of a debt netted out of one payout: one row per debt and payout, so netting the same
    payout twice recovers nothing more."""

    clawback = models.ForeignKey(Clawback, on_delete=models.PROTECT, related_name="recoveries")
    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="debt_recoveries")
    amount = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "billing_clawbackrecovery"
        constraints = [
            models.UniqueConstraint(fields=("clawback", "payout"), name="clawback_recovery_once_per_payout"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="clawback_recovery_amount_positive"),
        ]


class ListenerCredit(models.Model):
    """Money owed to a listener again after it was taken back from their transfer: the refund (or
    other cause) behind a clawback failed once the clawback had reversed the transfer, or a refund
    that had shrunk an earning before it was paid out failed afterwards. The earning stays paid; the
    credit is paid with the listener's next payout (added to its amount), once (`key` names the
    cause, e.g. `credit-refund-12-failed`).

    Owed while `payout` is empty or not sent; paid once its payout is (PAID or REVERSED). The ledger
    already carries it: the failed refund credited the listener's payable back."""

    key = models.CharField(max_length=100, unique=True)
    listener = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credits")
    earning = models.ForeignKey(ListenerPayout, on_delete=models.PROTECT, related_name="credits")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    payout = models.ForeignKey(Payout, null=True, blank=True, on_delete=models.PROTECT, related_name="credits")
    reason = models.CharField(max_length=255, blank=True, default="")
    # The earning's own transfer failed after all: it goes back to the pool whole, so nothing is owed here.
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="listener_credit_amount_positive")]

    def __str__(self) -> str:
        return f"Credit {self.key} {self.amount}"

    @classmethod
    def owed_q(cls) -> Q:
        """Credits not paid yet (nor cancelled)."""
        return Q(cancelled_at__isnull=True) & (
            Q(payout__isnull=True) | ~Q(payout__status__in=(Payout.Status.PAID, Payout.Status.REVERSED))
        )


class StripeCheckCursor(models.Model):
    """How far a `ledger_check` comparison with Stripe has got (`created` of Stripe's objects, Unix
    seconds): the next run lists only what Stripe created since, less a margin for late writes."""

    name = models.CharField(max_length=64, unique=True)
    created = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
