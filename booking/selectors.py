from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet

from booking.models import Booking, BookingPackage
from common.prepared import PreparedQuery


def package_list_active() -> QuerySet[BookingPackage]:
    return BookingPackage.objects.filter(is_active=True).order_by("duration_minutes", "id")


def booking_list_for_user(*, user) -> QuerySet[Booking]:
    """Only the bookings the user takes part in; anyone else's are invisible (404, not 403)."""
    return (
        Booking.objects.filter(Q(talker=user) | Q(listener=user))
        .select_related("package", "payment")
        .order_by("-scheduled_at", "-id")
    )


# A booking page is read over and over (a talker's app polls it until the payment shows): the
# statement kept compiled (common.prepared), the same rows as booking_list_for_user's.
_BOOKING_FOR_USER = PreparedQuery(
    lambda booking_id, user_id: booking_list_for_user(user=user_id).filter(pk=booking_id)[:1],
    booking_id=int,
    user_id=int,
)


def booking_get_for_user(*, booking_id: int, user) -> Booking | None:
    """One of the user's bookings (with its package and payment), or None: someone else's is not found."""
    return _BOOKING_FOR_USER.first(booking_id=booking_id, user_id=user.pk)


def listener_has_overlap(*, listener_id: int, starts_at, ends_at) -> bool:
    return Booking.objects.filter(
        listener_id=listener_id,
        status__in=Booking.SLOT_HOLDING,
        scheduled_at__lt=ends_at,
        ends_at__gt=starts_at,
    ).exists()


def listener_list_taking_bookings(*, busy_from: datetime) -> QuerySet:
    """Active listeners who take bookings, each with `busy_bookings`: the bookings holding their time
    from `busy_from` on, in start order (only the times; who booked is not shown)."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    busy = (
        Booking.objects.filter(status__in=Booking.SLOT_HOLDING, ends_at__gt=busy_from)
        .only("id", "listener_id", "scheduled_at", "ends_at")
        .order_by("scheduled_at", "id")
    )
    return (
        user_model.objects.filter(role=user_model.Role.LISTENER, is_active=True, accepts_bookings=True)
        .prefetch_related(Prefetch("bookings_as_listener", queryset=busy, to_attr="busy_bookings"))
        .order_by("username", "id")
    )


def session_start_window(booking: Booking) -> tuple[datetime, datetime]:
    """When a confirmed session may start: around its scheduled time, never a year early (a listener
    completing a far-future session at once would make the earning payable and block the talker's refund)."""
    return (
        booking.scheduled_at - timedelta(minutes=settings.SESSION_START_EARLY_MINUTES),
        booking.scheduled_at + timedelta(minutes=settings.SESSION_START_LATE_MINUTES),
    )


def booking_cancel_quote(*, booking_id: int, user, now: datetime) -> tuple[int, str]:
    """What cancelling the booking now would refund (cents) and under which policy, by the same rule
    `booking_cancel` applies; Conflict when the booking can no longer be cancelled."""
    from billing.models import Dispute, Payment
    from billing.refunds import Policy, cancellation_refund_quote, payment_refundable_amount
    from common.errors import Conflict, NotFound

    booking = booking_list_for_user(user=user).filter(pk=booking_id).first()
    if booking is None:
        raise NotFound("No booking of yours has this id.", field="id")
    if booking.status == Booking.Status.PENDING:
        return 0, Policy.UNPAID
    if booking.status != Booking.Status.CONFIRMED:
        raise Conflict(f"A booking that is {booking.status} cannot be cancelled.", field="status", code="invalid_state")
    payment = Payment.objects.filter(booking_id=booking.pk).first()
    if payment is None:
        raise Conflict(f"Booking #{booking.pk} is {booking.status} but has no payment.", field="status")
    if Dispute.objects.filter(payment=payment).exists():
        # As booking_cancel refuses it: Stripe refuses refunds on a disputed charge.
        raise Conflict(
            "This payment was disputed with the card issuer; an operator settles it.", field="status", code="disputed"
        )
    if now > session_start_window(booking)[1]:
        return payment_refundable_amount(payment=payment), Policy.NOT_STARTED
    quote = cancellation_refund_quote(
        total=payment_refundable_amount(payment=payment),
        scheduled_at=booking.scheduled_at,
        cancelled_by_listener=user.pk == booking.listener_id,
        now=now,
    )
    return quote.amount, quote.policy
