"""Reserved bookings: a subscription's future sessions, holding the listener's standing slot.

A reservation is a Booking in status `reserved`. It is slot-holding, so the exclusion constraint of
migration 0003/0004 keeps it from overlapping any other pending, confirmed, in-progress or reserved
booking of the listener: two subscriptions (or a subscription and a single booking) for one slot cannot
both win. When its period is paid, the reservation becomes a pending booking with the invoice's amounts
and billing confirms it like any paid booking (`billing.payments.payment_succeed`). When the subscription
ends or moves, reservations are released (cancelled).
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from billing.money import Split
from booking.models import Booking, BookingPackage
from common import locks
from common.errors import Conflict


def reservation_create(
    *, talker_id: int, listener_id: int, package: BookingPackage, scheduled_at: datetime, shares: Split, currency: str
) -> Booking:
    """Hold the slot, or raise Conflict(slot_taken). Runs in its own savepoint, so a taken slot leaves the
    caller's transaction usable."""
    slot_taken = Conflict(
        f"The listener already has a booking at {scheduled_at:%Y-%m-%d %H:%M} UTC.",
        field="first_session_at",
        code="slot_taken",
    )
    try:
        with transaction.atomic():
            return Booking.objects.create(
                talker_id=talker_id,
                listener_id=listener_id,
                package=package,
                status=Booking.Status.RESERVED,
                scheduled_at=scheduled_at,
                ends_at=Booking.end_for(scheduled_at, package.duration_minutes),
                currency=currency,
                total_amount=shares.total,
                app_fee=shares.app_fee,
                listener_amount=shares.listener,
                notes="Standing slot of a subscription",
            )
    except IntegrityError as error:
        if "booking_listener_no_overlap" in str(error):
            raise slot_taken from error
        raise
    except OperationalError as error:
        # Concurrent inserts for one slot can deadlock inside the exclusion constraint's check (see
        # booking.services.booking_create): the survivor holds the slot.
        if "exclusion constraint" in str(error) or "deadlock" in str(error):
            raise slot_taken from error
        raise


def reservation_release(*, booking_id: int, reason: str) -> bool:
    """Free a reserved slot (the subscription ended, moved, or its period will not be paid)."""
    return bool(
        Booking.objects.filter(pk=booking_id, status=Booking.Status.RESERVED).update(
            status=Booking.Status.CANCELLED,
            cancelled_at=timezone.now(),
            cancel_reason=reason,
            updated_at=timezone.now(),
        )
    )


def reservation_claim_for_payment(*, booking_id: int, shares: Split) -> Booking:
    """The period is paid: the reservation becomes a pending booking with what Stripe charged, for billing
    to confirm in the same transaction. A booking already past `reserved` is returned as it is."""
    booking = locks.lock(Booking.objects.filter(pk=booking_id)).get()
    if booking.status == Booking.Status.RESERVED:
        booking.status = Booking.Status.PENDING
        booking.total_amount = shares.total
        booking.app_fee = shares.app_fee
        booking.listener_amount = shares.listener
        booking.save(update_fields=["status", "total_amount", "app_fee", "listener_amount", "updated_at"])
    return booking
