from django.conf import settings
from django.db import models
from django.db.models import Q


class SubscriptionPlan(models.Model):
    """A package sold by the week or the month, backed by a Stripe Product and recurring Price that a
    worker creates and keeps in sync (`services.plan_sync`). Editable in the admin: a new price or
    interval makes a new Stripe Price for new subscriptions; running ones keep theirs."""

    class Interval(models.TextChoices):
        WEEK = "week", "Weekly"
        MONTH = "month", "Monthly"

    package = models.ForeignKey("booking.BookingPackage", on_delete=models.PROTECT, related_name="subscription_plans")
    name = models.CharField(max_length=100, blank=True, default="")
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.WEEK)
    # Price per period in cents; empty: the package's price.
    price_cents = models.BigIntegerField(null=True, blank=True)
    # Empty: the package's app fee percentage.
    app_fee_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    active = models.BooleanField(default=True)
    stripe_product_id = models.CharField(max_length=255, blank=True, default="")
    stripe_price_id = models.CharField(max_length=255, blank=True, default="")
    # What the Stripe Price above charges; differs from `price_cents`/interval until the worker re-syncs.
    synced_signature = models.CharField(max_length=64, blank=True, default="")
    sync_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("interval", "package__duration_minutes", "id")
        constraints = [
            models.CheckConstraint(
                condition=Q(price_cents__isnull=True) | Q(price_cents__gt=0), name="plan_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(app_fee_percent__isnull=True) | (Q(app_fee_percent__gte=0) & Q(app_fee_percent__lte=100)),
                name="plan_fee_percentage_range",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or f"{self.package.name}, {self.get_interval_display().lower()}"


class Subscription(models.Model):
    """A talker's standing slot with a listener, billed every period by a Stripe subscription."""

    class Status(models.TextChoices):
        CREATING = "creating", "Waiting for the worker to create it on Stripe"
        INCOMPLETE = "incomplete", "Incomplete (first payment not confirmed)"
        ACTIVE = "active", "Active"
        PAST_DUE = "past_due", "Past due (a renewal failed; Stripe retries)"
        PAUSED = "paused", "Paused (nothing billed until resumed)"
        CANCELED = "canceled", "Canceled"
        UNPAID = "unpaid", "Unpaid (retries exhausted)"
        INCOMPLETE_EXPIRED = "incomplete_expired", "Expired before the first payment"
        FAILED = "failed", "Could not be created on Stripe"

    ENDED = (Status.CANCELED, Status.UNPAID, Status.INCOMPLETE_EXPIRED, Status.FAILED)

    talker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions")
    listener = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="subscriptions_as_listener"
    )
    plan = models.ForeignKey(SubscriptionPlan, on_delete=models.PROTECT, related_name="subscriptions")
    # The standing slot: session k is at slot_anchor_at + (k - slot_anchor_occurrence) intervals.
    first_session_at = models.DateTimeField()
    slot_anchor_at = models.DateTimeField()
    slot_anchor_occurrence = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATING, db_index=True)
    currency = models.CharField(max_length=3, default="usd")
    stripe_subscription_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True, default="")
    stripe_price_id = models.CharField(max_length=255, blank=True, default="")
    # Stripe's billing cycle anchor: period k starts (k - billing_anchor_occurrence) intervals after it.
    billing_anchor = models.BigIntegerField(null=True, blank=True)
    billing_anchor_occurrence = models.PositiveIntegerField(default=0)
    # The billing before a change of interval, oldest first: [{"anchor", "occurrence", "interval", "plan_id"}].
    billing_history = models.JSONField(default=list, blank=True)
    # A change to a plan of the other interval, waiting for its period (a Stripe subscription schedule).
    stripe_schedule_id = models.CharField(max_length=255, blank=True, default="")
    pending_plan = models.ForeignKey(
        SubscriptionPlan, null=True, blank=True, on_delete=models.PROTECT, related_name="pending_subscriptions"
    )
    pending_price_id = models.CharField(max_length=255, blank=True, default="")
    pending_occurrence = models.PositiveIntegerField(null=True, blank=True)
    pending_change_at = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # The PaymentIntent the talker is asked to confirm (first payment, or a renewal needing 3-D Secure).
    payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    client_secret = models.CharField(max_length=255, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    stripe_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(condition=~Q(talker=models.F("listener")), name="subscription_talker_not_listener")
        ]

    def __str__(self) -> str:
        return f"Subscription #{self.pk} {self.status}"


class SubscriptionSession(models.Model):
    """Occurrence k of a subscription's standing slot and its booking (reserved until paid)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="sessions")
    occurrence = models.PositiveIntegerField()
    booking = models.OneToOneField("booking.Booking", on_delete=models.PROTECT, related_name="subscription_session")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("subscription", "occurrence", "id")
        indexes = [models.Index(fields=("subscription", "occurrence"))]

    def __str__(self) -> str:
        return f"Subscription #{self.subscription_id} session {self.occurrence}"


class SubscriptionInvoice(models.Model):
    """A Stripe invoice of one of our subscriptions, as last read from Stripe; a paid period invoice
    names the booking it produced."""

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="invoices")
    stripe_invoice_id = models.CharField(max_length=255, unique=True)
    billing_reason = models.CharField(max_length=32, blank=True, default="")
    occurrence = models.PositiveIntegerField(null=True, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    currency = models.CharField(max_length=3, default="usd")
    amount_due = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, blank=True, default="")
    attempt_count = models.PositiveIntegerField(default=0)
    payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    booking = models.OneToOneField(
        "booking.Booking", null=True, blank=True, on_delete=models.PROTECT, related_name="subscription_invoice"
    )
    # Why an operator must look at it (Stripe's amount or currency is not what we can book).
    review_reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("subscription", "period_start", "id")

    def __str__(self) -> str:
        return f"{self.stripe_invoice_id} {self.status}"
