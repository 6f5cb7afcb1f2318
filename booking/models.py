from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class BookingPackage(models.Model):
    """A priced session length, editable in the admin. Prices are catalogue decimals; bookings copy
    them into integer cents at the moment of booking, so editing a package never changes a booking."""

    name = models.CharField(max_length=100)
    duration_minutes = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2)
    app_fee_percentage = models.DecimalField(max_digits=5, decimal_places=2, default=10)
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("duration_minutes", "id")
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="package_price_positive"),
            models.CheckConstraint(condition=Q(duration_minutes__gt=0), name="package_duration_positive"),
            models.CheckConstraint(
                condition=Q(app_fee_percentage__gte=0) & Q(app_fee_percentage__lte=100),
                name="package_fee_percentage_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.duration_minutes} min, {self.price})"


class Booking(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending payment"
        CONFIRMED = "confirmed", "Confirmed"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        REFUNDED = "refunded", "Refunded"
        DISPUTED = "disputed", "Disputed"
        # A subscription's future session, holding the standing slot until its period is paid (subscriptions/).
        RESERVED = "reserved", "Reserved by a subscription"

    # States that hold the listener's time slot.
    SLOT_HOLDING = (Status.PENDING, Status.CONFIRMED, Status.IN_PROGRESS, Status.RESERVED)

    talker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings_as_talker")
    listener = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings_as_listener"
    )
    package = models.ForeignKey(BookingPackage, on_delete=models.PROTECT, related_name="bookings")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    scheduled_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    notes = models.TextField(blank=True, default="")
    # Money in cents, copied from the package when booked.
    currency = models.CharField(max_length=3, default="usd")
    total_amount = models.BigIntegerField()
    app_fee = models.BigIntegerField()
    listener_amount = models.BigIntegerField()
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    actual_duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cancel_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-scheduled_at", "-id")
        indexes = [models.Index(fields=("listener", "scheduled_at")), models.Index(fields=("talker", "scheduled_at"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_amount=F("app_fee") + F("listener_amount")), name="booking_split_adds_up"
            ),
            models.CheckConstraint(
                condition=Q(app_fee__gte=0) & Q(listener_amount__gte=0) & Q(total_amount__gt=0),
                name="booking_amounts_non_negative",
            ),
            models.CheckConstraint(condition=~Q(talker=F("listener")), name="booking_talker_is_not_listener"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("scheduled_at")), name="booking_ends_after_start"),
        ]
        # The no-overlap rule is a PostgreSQL exclusion constraint added in migration 0002 (SQLite has none).

    def __str__(self) -> str:
        return f"Booking #{self.pk} {self.status}"

    @staticmethod
    def end_for(scheduled_at, duration_minutes: int):
        return scheduled_at + timedelta(minutes=duration_minutes)
