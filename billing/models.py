from django.conf import settings
from django.db import models
from django.db.models import Q


class StripeCustomer(models.Model):
    """The talker's Stripe customer, created once by the PaymentIntent worker."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stripe_customer")
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.stripe_customer_id


class Payment(models.Model):
    """One booking's card payment through a Stripe PaymentIntent. Amounts in cents."""

    class Status(models.TextChoices):
        AWAITING_INTENT = "awaiting_intent", "Waiting for the worker to create the PaymentIntent"
        REQUIRES_PAYMENT_METHOD = "requires_payment_method", "Requires payment method"
        REQUIRES_CONFIRMATION = "requires_confirmation", "Requires confirmation"
        REQUIRES_ACTION = "requires_action", "Requires action"
        PROCESSING = "processing", "Processing"
        REQUIRES_CAPTURE = "requires_capture", "Requires capture"
        SUCCEEDED = "succeeded", "Succeeded"
        CANCELED = "canceled", "Canceled"
        FAILED = "failed", "Failed"

    # Statuses in which nothing more will happen to the PaymentIntent.
    FINAL = (Status.SUCCEEDED, Status.CANCELED, Status.FAILED)

    booking = models.OneToOneField("booking.Booking", on_delete=models.PROTECT, related_name="payment")
    talker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments")
    currency = models.CharField(max_length=3, default="usd")
    amount = models.BigIntegerField()
    app_fee = models.BigIntegerField()
    listener_amount = models.BigIntegerField()
    amount_refunded = models.BigIntegerField(default=0)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.AWAITING_INTENT, db_index=True)
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, default="", db_index=True)
    client_secret = models.CharField(max_length=255, blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")
    # When the last attempt to create the PaymentIntent was enqueued; the sweeper retries old ones.
    intent_requested_at = models.DateTimeField(null=True, blank=True)
    # Set when the booking was cancelled unpaid and its PaymentIntent must be cancelled on Stripe; cleared
    # once done. The stamp of the sweeper that sends it again when the task was lost.
    intent_cancel_requested_at = models.DateTimeField(null=True, blank=True)
    # Why an operator must look at this payment (Stripe took another amount or currency than ours):
    # such a payment is not booked until someone settles it.
    review_reason = models.CharField(max_length=255, blank=True, default="")
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount=models.F("app_fee") + models.F("listener_amount")), name="payment_split_adds_up"
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=models.F("amount")),
                name="payment_refund_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"Payment #{self.pk} {self.status} {self.amount} {self.currency}"


class WebhookEvent(models.Model):
    """A Stripe event as delivered: stored once (unique Stripe id) with its raw body and headers,
    processed once by a worker, replayable from the admin or `manage.py replay_webhook`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (no handler)"
        FAILED = "failed", "Failed"
        # Disagrees with our records or with Stripe (not our object, amount or state mismatch): nothing
        # was applied; last_error says why. An operator investigates, and may replay it.
        FLAGGED = "flagged", "Flagged for an operator (not applied)"

    stripe_event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    account = models.CharField(max_length=255, blank=True, default="")
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=64, blank=True, default="")
    stripe_created = models.BigIntegerField(default=0)
    payload = models.JSONField()
    raw_body = models.TextField()
    headers = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    deliveries = models.PositiveIntegerField(default=1)
    last_error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # When a pending event with no worker on it is due for the sweeper: stamped when its retry is
    # scheduled (after the countdown) and when the sweeper enqueues it; empty means received_at plus
    # WEBHOOK_SWEEP_AFTER_SECONDS (billing.webhooks.processing.webhook_events_sweep).
    sweep_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-received_at", "-id")

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_event_id}"


class WebhookRejection(models.Model):
    """A capped audit record of a delivery whose signature did not verify."""

    reason = models.CharField(max_length=255)
    remote_addr = models.CharField(max_length=64, blank=True, default="")
    signature_header = models.CharField(max_length=512, blank=True, default="")
    body_excerpt = models.CharField(max_length=512, blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-received_at",)


class LedgerAccount(models.Model):
    """An account of the double-entry ledger. Balances are sums of entries, never stored."""

    class Kind(models.TextChoices):
        ASSET = "asset", "Asset"
        LIABILITY = "liability", "Liability"
        REVENUE = "revenue", "Revenue"
        EXPENSE = "expense", "Expense"

    code = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    currency = models.CharField(max_length=3, default="usd")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )

    def __str__(self) -> str:
        return self.code


class LedgerKind(models.TextChoices):
    """What a ledger transaction books: the one list every writer and reader of the ledger uses."""

    PAYMENT_SUCCEEDED = "payment_succeeded", "Payment succeeded: split booked"
    REFUND = "refund", "Refund: split reversed"
    REFUND_FAILED = "refund_failed", "Refund failed: reversal undone"
    DISPUTE_FUNDS_WITHDRAWN = "dispute_funds_withdrawn", "Dispute: funds withdrawn"
    DISPUTE_FUNDS_REINSTATED = "dispute_funds_reinstated", "Dispute: funds reinstated"
    DISPUTE_LOST = "dispute_lost", "Dispute lost: split reversed"
    PAYOUT_TRANSFER = "payout_transfer", "Payout transfer"
    PAYOUT_TRANSFER_REVERSAL = "payout_transfer_reversal", "Payout transfer reversed"
    PROCESSING_FEE = "processing_fee", "Stripe processing fee"

    @classmethod
    def refunds(cls) -> tuple[str, ...]:
        return (cls.REFUND, cls.REFUND_FAILED)

    @classmethod
    def earnings(cls) -> tuple[str, ...]:
        """What makes up what a listener earned: their share and its reversals (not the transfers)."""
        return (cls.PAYMENT_SUCCEEDED, cls.REFUND, cls.REFUND_FAILED, cls.DISPUTE_LOST)


class LedgerTransaction(models.Model):
    """An immutable, balanced set of entries. `key` names the fact, so it is booked at most once."""

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=50, db_index=True, choices=LedgerKind.choices)
    description = models.CharField(max_length=255, blank=True, default="")
    currency = models.CharField(max_length=3, default="usd")
    booking = models.ForeignKey(
        "booking.Booking", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_transactions"
    )
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_transactions"
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return self.key


class LedgerEntry(models.Model):
    """One side of a transaction. `amount` is signed: debits positive, credits negative; the entries of
    a transaction sum to zero (a deferred constraint trigger enforces it on PostgreSQL)."""

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField()

    class Meta:
        ordering = ("id",)
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_not_zero")]


class Refund(models.Model):
    """A refund of (part of) a payment. Created in our database first, then on Stripe by a worker with an
    idempotency key derived from this row, and confirmed by `charge.refunded` / `charge.refund.updated`."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (not yet sent to Stripe)"
        REQUESTED = "requested", "Requested from Stripe"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    reason = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    stripe_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Which rule asked for it: a cancellation policy branch ("talker_late"), "admin", or "" when the
    # refund was made outside Talkpay (the Stripe dashboard) and only learnt from a webhook.
    policy = models.CharField(max_length=32, blank=True, default="")
    # When a worker was last asked to send it to Stripe; the sweeper re-enqueues old pending ones.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")]

    def __str__(self) -> str:
        return f"Refund #{self.pk} {self.status} {self.amount} {self.currency}"


class Dispute(models.Model):
    """A chargeback opened by the talker's bank, mirrored from Stripe's dispute object."""

    class Status(models.TextChoices):
        WARNING_NEEDS_RESPONSE = "warning_needs_response", "Warning needs response"
        WARNING_UNDER_REVIEW = "warning_under_review", "Warning under review"
        WARNING_CLOSED = "warning_closed", "Warning closed"
        NEEDS_RESPONSE = "needs_response", "Needs response"
        UNDER_REVIEW = "under_review", "Under review"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    CLOSED = (Status.WON, Status.LOST, Status.WARNING_CLOSED)

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="usd")
    reason = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.NEEDS_RESPONSE, db_index=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    funds_withdrawn = models.BooleanField(default=False)
    funds_reinstated = models.BooleanField(default=False)
    # Stripe's dispute fee (cents) as its balance transactions report it; borne by the app.
    fee = models.BigIntegerField(default=0)
    # What the booking and the earning were before the dispute froze them, restored when it is won.
    booking_status_before = models.CharField(max_length=16, blank=True, default="")
    earning_status_before = models.CharField(max_length=16, blank=True, default="")
    # The Stripe `created` of the last event applied, so an older event never overwrites a newer one.
    stripe_updated = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"Dispute {self.stripe_dispute_id} {self.status}"

    @property
    def is_closed(self) -> bool:
        return self.status in self.CLOSED
