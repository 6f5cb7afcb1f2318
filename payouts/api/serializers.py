from rest_framework import serializers

from payouts.models import ListenerPayout, Payout
from web.api.fields import CentsField


class PayoutSummarySerializer(serializers.ModelSerializer):
    """The payout an earning was paid in: its period, amount, status and Stripe transfer."""

    amount = CentsField()
    amount_reversed = CentsField()

    class Meta:
        model = Payout
        fields = (
            "id",
            "schedule",
            "period_start",
            "period_end",
            "amount",
            "amount_reversed",
            "currency",
            "status",
            "stripe_transfer_id",
            "paid_at",
        )
        read_only_fields = fields


class EarningSerializer(serializers.ModelSerializer):
    amount = CentsField()
    amount_reversed = CentsField()
    net_amount = CentsField()
    scheduled_at = serializers.DateTimeField(source="booking.scheduled_at")
    payout_detail = PayoutSummarySerializer(source="payout", read_only=True, allow_null=True)

    class Meta:
        model = ListenerPayout
        fields = (
            "id",
            "booking",
            "payment",
            "scheduled_at",
            "amount",
            "amount_reversed",
            "net_amount",
            "currency",
            "status",
            "payable_at",
            "payout",
            "payout_detail",
            "created_at",
        )
        read_only_fields = fields


class PendingEarningsSerializer(serializers.Serializer):
    pending_earnings = serializers.CharField()
    total_earned = serializers.CharField()
