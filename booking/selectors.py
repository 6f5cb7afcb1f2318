from django.db.models import Q, QuerySet

from booking.models import Booking, BookingPackage


def package_list_active() -> QuerySet[BookingPackage]:
    return BookingPackage.objects.filter(is_active=True).order_by("duration_minutes", "id")


def booking_list_for_user(*, user) -> QuerySet[Booking]:
    """Only the bookings the user takes part in; anyone else's are invisible (404, not 403)."""
    return (
        Booking.objects.filter(Q(talker=user) | Q(listener=user))
        .select_related("package", "payment")
        .order_by("-scheduled_at", "-id")
    )


def listener_has_overlap(*, listener_id: int, starts_at, ends_at) -> bool:
    return Booking.objects.filter(
        listener_id=listener_id,
        status__in=Booking.SLOT_HOLDING,
        scheduled_at__lt=ends_at,
        ends_at__gt=starts_at,
    ).exists()
