from rest_framework import serializers

from booking.api.serializers import CentsField
from payouts.models import ListenerPayout


class EarningSerializer(serializers.ModelSerializer):
    amount = CentsField()
    amount_reversed = CentsField()
    net_amount = CentsField()
    scheduled_at = serializers.DateTimeField(source="booking.scheduled_at")

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
            "created_at",
        )
        read_only_fields = fields


class PendingEarningsSerializer(serializers.Serializer):
    pending_earnings = serializers.CharField()
    total_earned = serializers.CharField()
