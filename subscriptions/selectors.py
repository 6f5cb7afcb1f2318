from django.db.models import Q, QuerySet
from django.utils import timezone

from booking.models import Booking
from subscriptions.models import Subscription, SubscriptionPlan, SubscriptionSession


def plan_list_active() -> QuerySet[SubscriptionPlan]:
    return SubscriptionPlan.objects.filter(active=True, package__is_active=True).select_related("package")


def subscription_list_for_user(*, user) -> QuerySet[Subscription]:
    """Only subscriptions the user takes part in (404 for anyone else's)."""
    return (
        Subscription.objects.filter(Q(talker=user) | Q(listener=user))
        .select_related("plan__package")
        .order_by("-created_at", "-id")
    )


def subscription_sessions(*, sub: Subscription) -> QuerySet[SubscriptionSession]:
    return SubscriptionSession.objects.filter(subscription=sub).select_related("booking").order_by("occurrence", "id")


def subscription_next_session(*, sub: Subscription) -> Booking | None:
    return (
        Booking.objects.filter(
            subscription_session__subscription=sub,
            status__in=(Booking.Status.CONFIRMED, Booking.Status.RESERVED),
            scheduled_at__gt=timezone.now(),
        )
        .order_by("scheduled_at")
        .first()
    )
