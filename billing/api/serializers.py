from rest_framework import serializers

from billing.models import Payment
from web.api.fields import CentsField


class PaymentSerializer(serializers.ModelSerializer):
    payment_intent_id = serializers.CharField(source="stripe_payment_intent_id", allow_null=True)
    amount = CentsField()
    app_fee = CentsField()
    listener_amount = CentsField()
    amount_refunded = CentsField()

    class Meta:
        model = Payment
        fields = (
            "id",
            "booking",
            "payment_intent_id",
            "amount",
            "app_fee",
            "listener_amount",
            "amount_refunded",
            "currency",
            "status",
            "failure_code",
            "failure_message",
            "succeeded_at",
            "created_at",
        )
        read_only_fields = fields
