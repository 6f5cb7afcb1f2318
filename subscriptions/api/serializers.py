from rest_framework import serializers

from subscriptions import selectors, services
from subscriptions.models import Subscription, SubscriptionPlan
from web.api.fields import CentsField


class PlanSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="display_name")
    price = serializers.SerializerMethodField()
    app_fee_percentage = serializers.SerializerMethodField()
    duration_minutes = serializers.IntegerField(source="package.duration_minutes")
    currency = serializers.SerializerMethodField()

    class Meta:
        model = SubscriptionPlan
        fields = ("id", "name", "package", "duration_minutes", "interval", "price", "currency", "app_fee_percentage")

    def get_price(self, plan: SubscriptionPlan) -> str:
        return CentsField().to_representation(services.plan_price_cents(plan))

    def get_app_fee_percentage(self, plan: SubscriptionPlan) -> str:
        return f"{services.plan_fee_percent(plan):.2f}"

    def get_currency(self, plan: SubscriptionPlan) -> str:
        from billing import money

        return money.default_currency()


class SubscriptionCreateInputSerializer(serializers.Serializer):
    listener_id = serializers.IntegerField(min_value=1)
    plan_id = serializers.IntegerField(min_value=1)
    first_session_at = serializers.DateTimeField()


class SubscriptionCancelInputSerializer(serializers.Serializer):
    at_period_end = serializers.BooleanField(default=True)


class SubscriptionChangeInputSerializer(serializers.Serializer):
    plan_id = serializers.IntegerField(min_value=1, required=False)
    next_session_at = serializers.DateTimeField(required=False)


class SubscriptionResumeInputSerializer(serializers.Serializer):
    next_session_at = serializers.DateTimeField(required=False)


class SubscriptionBookingSerializer(serializers.Serializer):
    occurrence = serializers.IntegerField()
    id = serializers.IntegerField(source="booking.id")
    scheduled_at = serializers.DateTimeField(source="booking.scheduled_at")
    status = serializers.CharField(source="booking.status")
    total_amount = CentsField(source="booking.total_amount")


class SubscriptionSerializer(serializers.ModelSerializer):
    plan = PlanSerializer()
    standing_slot = serializers.SerializerMethodField()
    next_session_at = serializers.SerializerMethodField()
    pending_change = serializers.SerializerMethodField()
    bookings = serializers.SerializerMethodField()
    payment = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = (
            "id",
            "status",
            "talker",
            "listener",
            "plan",
            "first_session_at",
            "standing_slot",
            "current_period_start",
            "current_period_end",
            "next_session_at",
            "cancel_at_period_end",
            "pending_change",
            "canceled_at",
            "ended_at",
            "bookings",
            "payment",
            "created_at",
        )

    def get_standing_slot(self, sub: Subscription) -> dict:
        at = sub.slot_anchor_at
        interval = services.slot_interval(sub)
        slot = {"interval": interval, "time": f"{at:%H:%M}", "timezone": "UTC"}
        if interval == SubscriptionPlan.Interval.WEEK:
            slot["weekday"] = f"{at:%A}"
        else:
            slot["day_of_month"] = at.day
        return slot

    def get_next_session_at(self, sub: Subscription) -> str | None:
        booking = selectors.subscription_next_session(sub=sub)
        return serializers.DateTimeField().to_representation(booking.scheduled_at) if booking else None

    def get_pending_change(self, sub: Subscription) -> dict | None:
        """A change to a plan of the other interval, waiting for its period: the plan and when it takes effect
        (the current period's end), and the first session on it."""
        if sub.pending_plan is None or sub.pending_change_at is None:
            return None
        at = serializers.DateTimeField()
        return {
            "plan": PlanSerializer(sub.pending_plan).data,
            "effective_at": at.to_representation(sub.pending_change_at),
            "first_session_at": at.to_representation(sub.slot_anchor_at),
        }

    def get_bookings(self, sub: Subscription) -> list:
        return SubscriptionBookingSerializer(selectors.subscription_sessions(sub=sub), many=True).data

    def get_payment(self, sub: Subscription) -> dict | None:
        """What the talker confirms with Stripe.js: the first payment, or a renewal asking for 3-D Secure.
        Only the talker sees the secret."""
        request = self.context.get("request")
        viewer_id = getattr(getattr(request, "user", None), "pk", None)
        if not sub.payment_intent_id:
            return None
        secret = sub.client_secret if viewer_id == sub.talker_id and sub.status not in Subscription.ENDED else ""
        return {"payment_intent_id": sub.payment_intent_id, "client_secret": secret or None}
