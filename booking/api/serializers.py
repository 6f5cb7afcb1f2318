from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from billing.models import Payment
from booking.models import Booking, BookingPackage
from web.api.fields import CentsField


class PackageSerializer(serializers.ModelSerializer):
    price = serializers.DecimalField(max_digits=10, decimal_places=2, coerce_to_string=True)
    app_fee_percentage = serializers.DecimalField(max_digits=5, decimal_places=2, coerce_to_string=True)

    class Meta:
        model = BookingPackage
        fields = ("id", "name", "duration_minutes", "price", "app_fee_percentage", "description")


class PaymentSummarySerializer(serializers.ModelSerializer):
    payment_intent_id = serializers.CharField(source="stripe_payment_intent_id", allow_null=True)
    client_secret = serializers.SerializerMethodField()
    amount = CentsField()

    class Meta:
        model = Payment
        fields = (
            "id",
            "client_secret",
            "payment_intent_id",
            "amount",
            "currency",
            "status",
            "failure_code",
            "failure_message",
        )

    def get_client_secret(self, payment: Payment) -> str | None:
        """Only the paying talker, and only while the payment can still move: the secret lets its holder
        confirm the PaymentIntent and read its payment details, so the listener never sees it."""
        request = self.context.get("request")
        viewer_id = getattr(getattr(request, "user", None), "pk", None)
        if viewer_id is None or viewer_id != payment.talker_id or payment.status in Payment.FINAL:
            return None
        return payment.client_secret or None


class BookingSerializer(serializers.ModelSerializer):
    total_amount = CentsField()
    app_fee = CentsField()
    listener_amount = CentsField()

    class Meta:
        model = Booking
        fields = (
            "id",
            "talker",
            "listener",
            "package",
            "status",
            "total_amount",
            "app_fee",
            "listener_amount",
            "currency",
            "scheduled_at",
            "ends_at",
            "notes",
            "started_at",
            "completed_at",
            "actual_duration_minutes",
            "cancelled_at",
            "cancel_reason",
            "created_at",
        )
        read_only_fields = fields


class BookingDetailSerializer(BookingSerializer):
    payment = PaymentSummarySerializer(read_only=True)

    class Meta(BookingSerializer.Meta):
        fields = (*BookingSerializer.Meta.fields, "payment")
        read_only_fields = fields


class BookingCreateInputSerializer(serializers.Serializer):
    listener_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    package_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    scheduled_at = serializers.DateTimeField(
        help_text="In the future, at most BOOKING_MAX_DAYS_AHEAD days ahead (365 by default)."
    )
    notes = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    def validate_scheduled_at(self, value):
        # Bounded here so that the end of the session (and every date derived from it) is representable.
        if value > timezone.now() + timedelta(days=settings.BOOKING_MAX_DAYS_AHEAD):
            raise serializers.ValidationError(
                f"Sessions can be booked at most {settings.BOOKING_MAX_DAYS_AHEAD} days ahead."
            )
        return value


class BookingCreateResponseSerializer(serializers.Serializer):
    booking = BookingSerializer()
    payment = PaymentSummarySerializer()
    poll_url = serializers.CharField(required=False)


class BookingCancelInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class CancelRefundSerializer(serializers.Serializer):
    """What the cancellation gives back: the amount is what will be refunded (a worker sends it)."""

    amount = CentsField(source="refund_amount")
    currency = serializers.CharField(source="booking.currency")
    policy = serializers.CharField()
    refund_id = serializers.IntegerField(source="refund.pk", allow_null=True, default=None)
    status = serializers.CharField(source="refund.status", allow_null=True, default=None)


class BookingCancelResponseSerializer(serializers.Serializer):
    booking = BookingDetailSerializer()
    refund = CancelRefundSerializer(source="*")
