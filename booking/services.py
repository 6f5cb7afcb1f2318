"""Writes of the booking lifecycle: pending → confirmed → in_progress → completed (cancelled, refunded, disputed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from billing import money
from billing.models import Dispute, Payment
from billing.payments import payment_create_for_booking, payment_events_unprocessed
from billing.refunds import (
    Policy,
    cancellation_refund_quote,
    payment_cancel_unpaid,
    payment_refundable_amount,
    refund_create,
)
from booking.models import Booking, BookingPackage
from booking.selectors import booking_list_for_user, listener_has_overlap, session_start_window
from common import locks
from common.errors import Conflict, Invalid, NotPermitted
from common.prepared import PreparedUpdate
from payouts.services import earning_session_completed

if TYPE_CHECKING:
    from billing.models import Refund

User = get_user_model()


def listener_bookable(*, talker, listener_id: int, only_talkers: str, not_yourself: str):
    """The listener a talker may book (or subscribe to): active, a listener, taking bookings, not the
    talker; otherwise the error names `listener_id`. The two messages say what was being done."""
    if not talker.is_talker:
        raise NotPermitted(only_talkers)
    if listener_id == talker.pk:
        raise Invalid(not_yourself, field="listener_id")
    listener = User.objects.filter(pk=listener_id, role=User.Role.LISTENER, is_active=True).first()
    if listener is None:
        raise Invalid("No listener with this id.", field="listener_id", code="not_found")
    if not listener.accepts_bookings:
        raise Invalid("This listener is not taking bookings.", field="listener_id", code="unavailable")
    return listener


def booking_create(*, talker, listener_id: int, package_id: int, scheduled_at: datetime, notes: str = "") -> Booking:
    """Record a pending booking and its payment in one transaction; the PaymentIntent is created by a
    worker once it commits. On PostgreSQL an exclusion constraint makes the slot check race-free."""
    listener = listener_bookable(
        talker=talker,
        listener_id=listener_id,
        only_talkers="Only talkers can book sessions.",
        not_yourself="You cannot book a session with yourself.",
    )
    package = BookingPackage.objects.filter(pk=package_id, is_active=True).first()
    if package is None:
        raise Invalid("No active package with this id.", field="package_id", code="not_found")
    if scheduled_at <= timezone.now():
        raise Invalid("The session must be scheduled in the future.", field="scheduled_at")

    ends_at = Booking.end_for(scheduled_at, package.duration_minutes)
    currency = money.default_currency()  # one currency end to end: charged, refunded and paid out in it
    shares = money.split(money.to_cents(package.price, currency), package.app_fee_percentage)
    slot_taken = Conflict("The listener already has a booking at this time.", field="scheduled_at", code="slot_taken")
    try:
        with transaction.atomic():
            _talker_pending_cap_check(talker_id=talker.pk)
            if listener_has_overlap(listener_id=listener.pk, starts_at=scheduled_at, ends_at=ends_at):
                raise slot_taken
            booking = Booking.objects.create(
                talker=talker,
                listener=listener,
                package=package,
                scheduled_at=scheduled_at,
                ends_at=ends_at,
                notes=notes,
                currency=currency,
                total_amount=shares.total,
                app_fee=shares.app_fee,
                listener_amount=shares.listener,
            )
            payment_create_for_booking(booking=booking)
    except IntegrityError as error:
        if "booking_listener_no_overlap" in str(error):
            raise slot_taken from error
        raise
    except OperationalError as error:
        # Concurrent inserts for one slot can deadlock inside the exclusion constraint's check; PostgreSQL
        # aborts all but one, which holds the slot: for the others the slot is taken.
        if "exclusion constraint" in str(error):
            raise slot_taken from error
        raise
    return booking


def _talker_pending_cap_check(*, talker_id: int) -> None:
    """Each unpaid booking holds a listener's slot and costs a Stripe customer and PaymentIntent, so a
    talker holds at most BOOKING_PENDING_MAX_PER_TALKER of them. The talker's row lock makes the count
    and the insert one step for concurrent requests."""
    User.objects.select_for_update().filter(pk=talker_id).values_list("pk", flat=True).first()
    pending = Booking.objects.filter(talker_id=talker_id, status=Booking.Status.PENDING).count()
    if pending >= settings.BOOKING_PENDING_MAX_PER_TALKER:
        raise Conflict(
            f"You already have {pending} unpaid bookings; pay or cancel one before booking another.",
            code="too_many_pending",
        )


def _participant_booking_for_update(*, booking_id: int, user) -> Booking:
    return booking_list_for_user(user=user).select_for_update(of=("self",)).get(pk=booking_id)


@transaction.atomic
def booking_start(*, booking_id: int, user) -> Booking:
    booking = _participant_booking_for_update(booking_id=booking_id, user=user)
    if booking.status != Booking.Status.CONFIRMED:
        raise Invalid(
            f"Only a paid, confirmed booking can start; this one is {booking.status}.",
            field="status",
            code="invalid_state",
        )
    now = timezone.now()
    opens, closes = session_start_window(booking)
    if now < opens:
        raise Invalid(
            f"The session can start from {opens:%Y-%m-%d %H:%M} UTC, "
            f"{settings.SESSION_START_EARLY_MINUTES} minutes before it is scheduled.",
            field="scheduled_at",
            code="too_early",
        )
    if now > closes:
        raise Invalid(
            f"The session's start window closed at {closes:%Y-%m-%d %H:%M} UTC; it can be cancelled instead.",
            field="scheduled_at",
            code="too_late",
        )
    booking.status = Booking.Status.IN_PROGRESS
    booking.started_at = now
    booking.save(update_fields=["status", "started_at", "updated_at"])
    return booking


def session_completable_at(booking: Booking) -> datetime:
    """A session has run once it lasted SESSION_MIN_RUN_PERCENT of the booked time, or its scheduled end
    has come (a late start does not extend the talker's booked time)."""
    minimum = timedelta(minutes=booking.package.duration_minutes * settings.SESSION_MIN_RUN_PERCENT / 100)
    started_at = booking.started_at or timezone.now()  # set whenever the booking is in progress
    return min(started_at + minimum, booking.ends_at)


@transaction.atomic
def booking_complete(*, booking_id: int, user) -> Booking:
    booking = _participant_booking_for_update(booking_id=booking_id, user=user)
    if booking.status != Booking.Status.IN_PROGRESS:
        raise Invalid(
            f"Only a session in progress can complete; this one is {booking.status}.",
            field="status",
            code="invalid_state",
        )
    now = timezone.now()
    completable_at = session_completable_at(booking)
    if now < completable_at:
        raise Invalid(
            f"The session can be completed from {completable_at:%Y-%m-%d %H:%M:%S} UTC, once it has run.",
            field="status",
            code="too_early",
        )
    booking.status = Booking.Status.COMPLETED
    booking.completed_at = now
    started_at = booking.started_at or now  # set by booking_start, which every in-progress booking passed
    booking.actual_duration_minutes = max(0, round((now - started_at).total_seconds() / 60))
    booking.save(update_fields=["status", "completed_at", "actual_duration_minutes", "updated_at"])
    earning_session_completed(booking_id=booking.pk, completed_at=now)
    return booking


@dataclass(frozen=True)
class Cancellation:
    booking: Booking
    refund_amount: int
    policy: str
    refund: Refund | None  # when there is something to refund


# Cancelling makes sense before the session starts: unpaid (nothing to refund) or paid and confirmed
# (refund by policy, also after the scheduled start when the session never started). A session in
# progress or completed is settled by completing it, or by an operator's refund.
CANCELLABLE = (Booking.Status.PENDING, Booking.Status.CONFIRMED)


@transaction.atomic
def booking_cancel(*, booking_id: int, user, reason: str = "") -> Cancellation:
    """Cancel a booking by either participant and refund by policy (billing.refunds).

    Locks the payment, then the booking (the webhook handlers' order). A pending booking's
    PaymentIntent is cancelled by a worker; a confirmed one's refund is recorded here and sent to
    Stripe by a worker once this commits. What the listener keeps of a partial refund becomes
    payable like a completed session's earning.
    """
    # The payment's lock first, then the booking's: the order the webhook handlers lock them in.
    visible = booking_list_for_user(user=user).values_list("pk", flat=True).get(pk=booking_id)
    payment = locks.lock(Payment.objects.filter(booking_id=visible)).first()
    booking = _participant_booking_for_update(booking_id=visible, user=user)
    if booking.status not in CANCELLABLE:
        raise Conflict(f"A booking that is {booking.status} cannot be cancelled.", field="status", code="invalid_state")
    now = timezone.now()
    refund = None
    if booking.status == Booking.Status.PENDING:
        amount, policy = 0, Policy.UNPAID
        if payment is not None:
            payment_cancel_unpaid(payment=payment)
    elif payment is None:
        raise Conflict(f"Booking #{booking.pk} is {booking.status} but has no payment.", field="status")
    else:
        if Dispute.objects.filter(payment=payment).exists():
            # Stripe refuses refunds on a charge that was disputed: the bank settled it, not a policy.
            raise Conflict(
                "This payment was disputed with the card issuer; an operator settles it.",
                field="status",
                code="disputed",
            )
        remaining = payment_refundable_amount(payment=payment)
        if now > session_start_window(booking)[1]:
            # Never started, and now it cannot: either participant could have started it, so the listener
            # did not show up (or neither did). The talker gets everything back; nothing becomes payable.
            amount, policy = remaining, Policy.NOT_STARTED
        else:
            quote = cancellation_refund_quote(
                total=remaining,
                scheduled_at=booking.scheduled_at,
                cancelled_by_listener=user.pk == booking.listener_id,
                now=now,
            )
            amount, policy = quote.amount, quote.policy
        if amount > 0:
            refund = refund_create(
                payment_id=payment.pk,
                amount=amount,
                reason=reason or f"Booking #{booking.pk} cancelled",
                policy=policy,
                requested_by=user,
            )
        if amount < remaining:
            # The listener keeps part of what is left: it becomes payable like a completed session's.
            earning_session_completed(booking_id=booking.pk, completed_at=now)
    _booking_mark_cancelled(booking, by=user, reason=reason, at=now)
    return Cancellation(booking=booking, refund_amount=amount, policy=policy, refund=refund)


def _booking_mark_cancelled(booking: Booking, *, by, reason: str, at: datetime) -> None:
    booking.status = Booking.Status.CANCELLED
    booking.cancelled_at = at
    booking.cancelled_by = by
    booking.cancel_reason = reason
    booking.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancel_reason", "updated_at"])


def bookings_expire_unpaid(*, limit: int = 200) -> int:
    """Cancel pending bookings left unpaid for settings.BOOKING_PENDING_EXPIRY_MINUTES, so an abandoned
    checkout does not hold the listener's slot forever. Their PaymentIntents are cancelled by a worker;
    one paid in the meantime is refunded in full by the same path as a talker's cancellation. Never one
    whose payment has events still unprocessed: expiry does not run ahead of what Stripe said."""
    paid_or_paying = (Payment.Status.SUCCEEDED, Payment.Status.PROCESSING)
    cutoff = timezone.now() - timedelta(minutes=settings.BOOKING_PENDING_EXPIRY_MINUTES)
    candidates = list(
        Booking.objects.filter(status=Booking.Status.PENDING, created_at__lt=cutoff)
        .exclude(payment__status__in=paid_or_paying)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for booking_id in candidates:
        with transaction.atomic():
            # The payment's lock first, then the booking's: the order the webhook handlers lock them in.
            payment = locks.lock(Payment.objects.filter(booking_id=booking_id)).first()
            booking = booking_lock(booking_id=booking_id)
            if booking.status != Booking.Status.PENDING or (payment and payment.status in paid_or_paying):
                continue
            if payment is not None and payment_events_unprocessed(payment=payment):
                # Stripe told us something about this payment that we have not applied yet (a worker
                # is down, a message was lost): it may be the success. Wait for it; the sweeper runs it.
                continue
            if payment is not None:
                payment_cancel_unpaid(payment=payment)
            _booking_mark_cancelled(booking, by=None, reason="Expired: not paid in time.", at=timezone.now())
            expired += 1
    return expired


# --- What billing asks of bookings (billing.owners.BookingOwner) ------------------------------------
# Called inside billing's transaction, under the payment's lock (common.locks: payment → booking).


def booking_lock(*, booking_id: int) -> Booking:
    return locks.lock(Booking.objects.filter(pk=booking_id)).get()


# Every succeeded payment runs it: compiled once (common.prepared).
_CONFIRM_PENDING = PreparedUpdate(
    lambda pk: Booking.objects.filter(pk=pk, status=Booking.Status.PENDING), ("status", "updated_at"), pk=int
)


def booking_confirm_paid(*, booking_id: int) -> bool:
    """The payment succeeded: a booking still waiting for it is confirmed. One conditional UPDATE; a
    cancelled booking stays cancelled (its payment is refunded by policy)."""
    confirmed = {"status": Booking.Status.CONFIRMED, "updated_at": timezone.now()}
    return bool(_CONFIRM_PENDING.run(set=confirmed, pk=booking_id))


def booking_mark_refunded(*, booking_id: int) -> bool:
    """Everything paid was refunded. A disputed booking stays disputed: the bank decides."""
    booking = booking_lock(booking_id=booking_id)
    if booking.status in (Booking.Status.REFUNDED, Booking.Status.DISPUTED):
        return False
    booking.status = Booking.Status.REFUNDED
    booking.save(update_fields=["status", "updated_at"])
    return True


def booking_refund_failed(*, booking_id: int) -> bool:
    """A refund that had refunded everything failed on Stripe: the money is ours again, so the booking
    is no longer refunded: cancelled if it was, otherwise paid (confirmed)."""
    booking = booking_lock(booking_id=booking_id)
    if booking.status != Booking.Status.REFUNDED:
        return False
    booking.status = Booking.Status.CANCELLED if booking.cancelled_at else Booking.Status.CONFIRMED
    booking.save(update_fields=["status", "updated_at"])
    return True


def booking_dispute_freeze(*, booking_id: int) -> str:
    """The payment is disputed: freeze the booking. Returns the status it had, to restore later."""
    booking = booking_lock(booking_id=booking_id)
    before = booking.status
    if booking.status != Booking.Status.DISPUTED:
        booking.status = Booking.Status.DISPUTED
        booking.save(update_fields=["status", "updated_at"])
    return before


def booking_dispute_release(*, booking_id: int, restore_to: str) -> bool:
    """The dispute closed in our favour: a disputed booking goes back to `restore_to`."""
    booking = booking_lock(booking_id=booking_id)
    if booking.status != Booking.Status.DISPUTED or not restore_to:
        return False
    booking.status = restore_to
    booking.save(update_fields=["status", "updated_at"])
    return True


def booking_cancel_by_system(*, booking_id: int, reason: str) -> bool:
    """Cancel a booking nobody paid for (the payment was canceled on Stripe). Only a pending one."""
    booking = booking_lock(booking_id=booking_id)
    if booking.status != Booking.Status.PENDING:
        return False
    _booking_mark_cancelled(booking, by=None, reason=reason, at=timezone.now())
    return True
