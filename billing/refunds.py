"""Refunds: the cancellation policy, recording a refund and sending it to Stripe, admin refunds.

A refund is recorded in our database first (status `pending`) in the same transaction as the fact
that causes it (a cancellation, an admin's decision), and sent to Stripe by a worker once that
commits, with the idempotency key `refund-<refund id>`. Stripe's answer moves it to `requested`;
`charge.refunded` / `charge.refund.updated` confirm it, and the webhook side (`refund_apply`) updates
`payment.amount_refunded`, reverses the split in the ledger and shrinks the listener's earning. The
refund's metadata carries `refund_id`, which is how that handler finds our row.

Until it is confirmed, a refund in flight still counts against what remains refundable, so two
quick requests can never refund more than was paid.

Applying Stripe's refunds
-------------------------
charge.refunded / charge.refund.updated: record the refund and reverse the split, exact to the cent.

The reversal is computed from the cumulative refunded amount, never refund by refund: the app's
part of everything refunded so far is `proportion(refunded, total, app_fee)`, the listener's part is
the rest, and what is booked for one refund is that target minus what earlier reversals already
booked. Rounding therefore never drifts, the reversals of a payment never exceed its original
shares, and a full refund reverses exactly the original split. Each booking is keyed by Stripe's
refund id (`refund-re_…`), so it happens once.

`refund_apply` is the service the refund-creating worker, disputes and clawbacks can call too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from billing import fees, ledger, money, owners, stripe_gateway
from billing.models import LedgerEntry, LedgerKind, Payment, Refund
from billing.payments import object_id, payment_succeed
from billing.stripe_gateway import refunds as stripe_refunds
from common import locks
from common.errors import Conflict, Invalid
from workers.notify import notification_enqueue
from workers.outbox import enqueue_or_leave_to_sweeper, enqueue_stale

logger = logging.getLogger(__name__)

# Refunds sent to Stripe but not yet confirmed, or not yet sent: they still hold part of the payment.
IN_FLIGHT = (Refund.Status.PENDING, Refund.Status.REQUESTED)


class Policy:
    """Names of the cancellation policy's branches, stored on the refund and shown in the API."""

    UNPAID = "unpaid"
    LISTENER_CANCELLED = "listener_cancelled"
    TALKER_EARLY = "talker_early"
    TALKER_LATE = "talker_late"
    TALKER_AFTER_START = "talker_after_start"
    # The start window closed with nobody starting the session (booking.services.session_start_window).
    NOT_STARTED = "not_started"
    PAID_AFTER_CANCEL = "paid_after_cancel"
    ADMIN = "admin"


@dataclass(frozen=True)
class RefundQuote:
    amount: int
    policy: str


def cancellation_refund_quote(
    *, total: int, scheduled_at: datetime, cancelled_by_listener: bool, now: datetime
) -> RefundQuote:
    """What a cancellation of a paid booking gives back, in cents.

    A listener cancelling always refunds everything: the talker did nothing wrong. A talker gets
    everything back when cancelling at least CANCEL_FULL_REFUND_HOURS before the start, then
    CANCEL_LATE_REFUND_PERCENT until the start (rounded half up, via the money module), then nothing:
    the listener kept the slot free.
    """
    if cancelled_by_listener:
        return RefundQuote(total, Policy.LISTENER_CANCELLED)
    if now <= scheduled_at - timedelta(hours=settings.CANCEL_FULL_REFUND_HOURS):
        return RefundQuote(total, Policy.TALKER_EARLY)
    if now < scheduled_at:
        percent = settings.CANCEL_LATE_REFUND_PERCENT
        return RefundQuote(money.proportion(percent, 100, total), Policy.TALKER_LATE)
    return RefundQuote(0, Policy.TALKER_AFTER_START)


def payment_refundable_amount(*, payment: Payment) -> int:
    """What can still be refunded: the amount, less what Stripe confirmed (`amount_refunded`, kept by
    the webhook side) and what is in flight (pending or requested, not yet confirmed)."""
    in_flight = Refund.objects.filter(payment=payment, status__in=IN_FLIGHT).aggregate(total=Sum("amount"))["total"]
    return max(0, payment.amount - payment.amount_refunded - (in_flight or 0))


def refund_create(
    *,
    payment_id: int,
    amount: int,
    reason: str,
    policy: str,
    requested_by=None,
    require_succeeded: bool = True,
) -> Refund:
    """Record a refund of `amount` cents and send it to Stripe once this transaction commits.

    Refuses more than what remains refundable (under a row lock on the payment, so concurrent
    requests are serialised) and payments that were never paid.
    """
    if amount <= 0:
        raise Invalid("A refund must be more than 0.", field="amount")
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if require_succeeded and payment.status != Payment.Status.SUCCEEDED:
            raise Conflict(
                f"Only a succeeded payment can be refunded; this one is {payment.status}.",
                field="payment",
                code="invalid_state",
            )
        remaining = payment_refundable_amount(payment=payment)
        if amount > remaining:
            raise Invalid(
                f"At most {money.format_amount(remaining)} {payment.currency} can still be refunded.",
                field="amount",
                code="amount_too_large",
            )
        refund = Refund.objects.create(
            payment=payment,
            amount=amount,
            currency=payment.currency,
            reason=reason[:255],
            policy=policy,
            requested_by=requested_by,
            enqueued_at=timezone.now(),
        )
        transaction.on_commit(lambda: refund_enqueue(refund_id=refund.pk))
    return refund


def refund_create_for_admin(*, payment_id: int, amount: int, reason: str, admin) -> Refund:
    """An operator's refund of any amount up to what remains, always with a reason."""
    if not reason.strip():
        raise Invalid("Say why this payment is refunded.", field="reason")
    return refund_create(
        payment_id=payment_id, amount=amount, reason=reason.strip(), policy=Policy.ADMIN, requested_by=admin
    )


def refund_enqueue(*, refund_id: int) -> bool:
    """Ask a worker to send the refund. A broker outage is logged: the sweeper sends it later."""
    return enqueue_or_leave_to_sweeper("billing.refund_create", refund_id, what="refund")


def refund_send(*, refund_id: int) -> Refund:
    """Create the refund on Stripe, once. The row lock serialises workers; the idempotency key
    covers a crash between Stripe's answer and our save, and the same parameters are sent every time."""
    with transaction.atomic():
        refund = locks.lock(Refund.objects.select_related("payment").filter(pk=refund_id)).get()
        if refund.status != Refund.Status.PENDING or refund.stripe_refund_id:
            return refund
        payment = refund.payment
        if not payment.stripe_payment_intent_id:
            refund.status = Refund.Status.FAILED
            refund.failure_reason = "The payment has no PaymentIntent to refund."
            refund.save(update_fields=["status", "failure_reason", "updated_at"])
            return refund
        try:
            result = stripe_refunds.refund_create(
                refund_id=refund.pk,
                payment_id=payment.pk,
                booking_id=payment.booking_id,
                payment_intent_id=payment.stripe_payment_intent_id,
                amount=refund.amount,
                reason=refund.reason,
            )
        except stripe_gateway.PermanentStripeError as error:
            refund.status = Refund.Status.FAILED
            refund.failure_reason = f"{error.code or 'stripe_error'}: {error.message}"[:255]
            refund.save(update_fields=["status", "failure_reason", "updated_at"])
            logger.error("refund %s refused by Stripe: %s", refund.pk, refund.failure_reason)
            return refund
        refund.stripe_refund_id = result["id"]
        if result.get("status") in ("failed", "canceled"):
            refund.status = Refund.Status.FAILED
            refund.failure_reason = (result.get("failure_reason") or result["status"])[:255]
        else:
            # Confirmed (and booked) only by charge.refunded / charge.refund.updated.
            refund.status = Refund.Status.REQUESTED
        refund.save(update_fields=["stripe_refund_id", "status", "failure_reason", "updated_at"])
        return refund


def refunds_sweep_pending() -> int:
    """Send again refunds still pending after a while (the broker was down, or a task was lost)."""
    return enqueue_stale(
        Refund.objects.filter(status=Refund.Status.PENDING, stripe_refund_id__isnull=True),
        stamp_field="enqueued_at",
        enqueue=lambda pk: refund_enqueue(refund_id=pk),
    )


# --- Cancelling an unpaid booking's PaymentIntent ------------------------------------------------------


def payment_cancel_unpaid(*, payment: Payment) -> None:
    """The booking was cancelled before it was paid. Called under the payment's row lock.

    Without a PaymentIntent yet, marking the payment canceled is enough: the creating worker skips
    it. Otherwise a worker cancels the PaymentIntent on Stripe once this commits.
    """
    if payment.status in Payment.FINAL:
        return
    if not payment.stripe_payment_intent_id:
        payment.status = Payment.Status.CANCELED
        payment.save(update_fields=["status", "updated_at"])
        return
    # Recorded with the cancellation, so a broker outage delays the Stripe call but never loses it
    # (a talker paying meanwhile would otherwise keep a cancelled booking's money).
    payment.intent_cancel_requested_at = timezone.now()
    payment.save(update_fields=["intent_cancel_requested_at", "updated_at"])
    payment_id = payment.pk
    transaction.on_commit(lambda: payment_intent_cancel_enqueue(payment_id=payment_id))


def payment_intent_cancel_enqueue(*, payment_id: int) -> bool:
    return enqueue_or_leave_to_sweeper("billing.payment_intent_cancel", payment_id, what="PaymentIntent cancel")


def payment_intent_cancels_sweep() -> int:
    """Send again PaymentIntent cancellations whose task was lost."""
    return enqueue_stale(
        Payment.objects.filter(intent_cancel_requested_at__isnull=False),
        stamp_field="intent_cancel_requested_at",
        enqueue=lambda pk: payment_intent_cancel_enqueue(payment_id=pk),
    )


def payment_intent_cancel(*, payment_id: int) -> Payment:
    """Cancel the PaymentIntent of a cancelled, unpaid booking. If the talker paid in the meantime
    (Stripe refuses: the intent already succeeded), refund the whole payment instead, once."""
    with transaction.atomic():
        payment = locks.lock(Payment.objects.filter(pk=payment_id)).get()
        if payment.status in (Payment.Status.CANCELED, Payment.Status.FAILED) or not payment.stripe_payment_intent_id:
            _cancel_request_done(payment)
            return payment
        try:
            intent = stripe_refunds.payment_intent_cancel(
                payment_id=payment.pk, payment_intent_id=payment.stripe_payment_intent_id
            )
        except stripe_gateway.PermanentStripeError as error:
            if error.code != "payment_intent_unexpected_state":
                raise
            intent = stripe_gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)
        if intent["status"] == Payment.Status.SUCCEEDED:
            refund_paid_after_cancel(payment=payment)
            _cancel_request_done(payment)
            return payment
        if intent["status"] == Payment.Status.CANCELED and payment.status != Payment.Status.CANCELED:
            payment.status = Payment.Status.CANCELED
            payment.save(update_fields=["status", "updated_at"])
        _cancel_request_done(payment)
        return payment


def refund_paid_after_cancel(*, payment: Payment) -> Refund | None:
    """The whole payment back to the talker, once: the booking was cancelled before it was paid.
    Called under the payment's lock (by the PaymentIntent cancel, or by the success that beat it)."""
    if Refund.objects.filter(payment=payment, policy=Policy.PAID_AFTER_CANCEL).exists():
        return None
    return refund_create(
        payment_id=payment.pk,
        amount=payment.amount,
        reason="The booking was cancelled before the payment went through.",
        policy=Policy.PAID_AFTER_CANCEL,
        require_succeeded=False,
    )


def _cancel_request_done(payment: Payment) -> None:
    if payment.intent_cancel_requested_at is not None:
        payment.intent_cancel_requested_at = None
        payment.save(update_fields=["intent_cancel_requested_at", "updated_at"])


# --- Applying Stripe's refunds -------------------------------------------------------------------


R = Refund.Status
_FROM_STRIPE = {
    "pending": R.REQUESTED,
    "requires_action": R.REQUESTED,
    "succeeded": R.SUCCEEDED,
    "failed": R.FAILED,
    "canceled": R.CANCELED,
}
# A refund moves only up; a succeeded card refund can still fail later (Stripe sends it back).
REFUND_RANK = {R.PENDING: 0, R.REQUESTED: 1, R.SUCCEEDED: 2, R.FAILED: 3, R.CANCELED: 3}


class RefundMismatch(Exception):
    """Stripe and our books disagree in a way no retry will fix (the event stays failed, visibly)."""


def refund_reversal_key(*, stripe_refund_id: str, status: str) -> str:
    return f"refund-{stripe_refund_id}" if status == R.SUCCEEDED else f"refund-{stripe_refund_id}-{status}"


def _refund_row_locked(*, payment: Payment, stripe_refund: dict) -> tuple[Refund, bool]:
    """Our Refund row for Stripe's refund, created when Stripe made it (the dashboard); moved forward."""
    stripe_id = stripe_refund["id"]
    status = _FROM_STRIPE.get(stripe_refund.get("status") or "", R.REQUESTED)
    rows = Refund.objects.select_for_update()
    refund = rows.filter(stripe_refund_id=stripe_id).first()
    if refund is None:
        refund_id = str((stripe_refund.get("metadata") or {}).get("refund_id") or "")
        if refund_id.isdigit():
            refund = rows.filter(
                Q(stripe_refund_id__isnull=True) | Q(stripe_refund_id=stripe_id), pk=int(refund_id), payment=payment
            ).first()
    if refund is None:
        refund = Refund.objects.create(
            payment=payment,
            amount=stripe_refund["amount"],
            currency=stripe_refund.get("currency") or payment.currency,
            reason=(stripe_refund.get("reason") or "refunded on Stripe")[:255],
            status=status,
            stripe_refund_id=stripe_id,
            failure_reason=(stripe_refund.get("failure_reason") or "")[:255],
        )
        if status == R.SUCCEEDED:
            notification_enqueue("billing.notify_refund_confirmation", refund.pk)
        return refund, True
    if refund.payment_id != payment.pk:
        raise RefundMismatch(f"refund {stripe_id} belongs to payment {refund.payment_id}, not {payment.pk}")
    fields = []
    if refund.stripe_refund_id != stripe_id:
        refund.stripe_refund_id = stripe_id
        fields.append("stripe_refund_id")
    if REFUND_RANK[status] > REFUND_RANK[refund.status]:
        refund.status = status
        fields.append("status")
        if status == R.SUCCEEDED:
            notification_enqueue("billing.notify_refund_confirmation", refund.pk)
        if stripe_refund.get("failure_reason"):
            refund.failure_reason = stripe_refund["failure_reason"][:255]
            fields.append("failure_reason")
    if refund.amount != stripe_refund["amount"]:
        # Stripe's amount is what moved, whatever we asked for.
        refund.amount = stripe_refund["amount"]
        fields.append("amount")
    if fields:
        refund.save(update_fields=[*fields, "updated_at"])
    return refund, bool(fields)


def _reversals_booked(*, payment_id: int) -> dict[str, int]:
    rows = (
        LedgerEntry.objects.filter(transaction__payment_id=payment_id, transaction__kind__in=LedgerKind.refunds())
        .values("account__code")
        .annotate(total=Sum("amount"))
    )
    return {row["account__code"]: row["total"] for row in rows}


def _reversal_sync(*, payment: Payment, refund: Refund) -> bool:
    """Book what the refunds succeeded so far still need reversed, and bring the payment, the
    earning and the booking in line. Called under the payment's lock."""
    refunded = Refund.objects.filter(payment=payment, status=R.SUCCEEDED).aggregate(total=Sum("amount"))["total"] or 0
    if refunded > payment.amount:
        raise RefundMismatch(f"payment {payment.pk}: refunds total {refunded}, more than the {payment.amount} paid")
    booking_id = payment.booking_id
    owners.bookings().booking_lock(booking_id=booking_id)
    listener_code = ledger.listener_payable(payment.booking.listener_id)
    target_app = money.proportion(refunded, payment.amount, payment.app_fee)
    target_listener = refunded - target_app
    booked = _reversals_booked(payment_id=payment.pk)
    # Reversals debit revenue and the listener's payable (positive entries).
    delta_app = target_app - booked.get(ledger.APP_REVENUE, 0)
    delta_listener = target_listener - booked.get(listener_code, 0)
    changed = False
    if delta_app or delta_listener:
        key = refund_reversal_key(stripe_refund_id=refund.stripe_refund_id, status=refund.status)
        _, created = ledger.ledger_post(
            key=key,
            kind=LedgerKind.REFUND if refund.status == R.SUCCEEDED else LedgerKind.REFUND_FAILED,
            lines=[
                ledger.debit(ledger.APP_REVENUE, delta_app),
                ledger.debit(listener_code, delta_listener),
                ledger.credit(ledger.PLATFORM_CASH, delta_app + delta_listener),
            ],
            currency=payment.currency,
            description=f"Booking #{booking_id}: refund {refund.stripe_refund_id} ({refund.status})",
            booking_id=booking_id,
            payment_id=payment.pk,
            metadata={"refund_id": refund.pk, "refunded_total": refunded},
        )
        if not created:
            raise RefundMismatch(
                f"{key} is booked already, yet payment {payment.pk} still needs {delta_app + delta_listener}"
            )
        # Stripe's fee on the refund (or a failed refund's), if it charges or returns one.
        fees.payment_fees_enqueue_on_commit(payment_id=payment.pk)
        changed = True
    if payment.amount_refunded != refunded:
        payment.amount_refunded = refunded
        payment.save(update_fields=["amount_refunded", "updated_at"])
        changed = True
    fully_refunded = refunded == payment.amount
    if fully_refunded and owners.bookings().booking_mark_refunded(booking_id=booking_id):
        changed = True
    owners.payouts().earning_reverse(
        payment_id=payment.pk,
        cents=delta_listener,
        cause=f"refund-{refund.pk}" if refund.status == R.SUCCEEDED else f"refund-{refund.pk}-{refund.status}",
    )
    if refund.status == R.FAILED and not fully_refunded:
        # The money stayed with us: the booking is no longer refunded, and the listener's share of a
        # cancelled booking waits, held, for an operator (the refund is listed as failed in the admin).
        changed = owners.bookings().booking_refund_failed(booking_id=booking_id) or changed
        payment.booking.refresh_from_db(fields=["status"])
        if payment.booking.status == "cancelled":
            changed = bool(owners.payouts().earning_hold(payment_id=payment.pk)) or changed
        logger.error("refund %s of payment %s failed on Stripe: %s", refund.pk, payment.pk, refund.failure_reason)
    return changed


def refund_apply(*, payment_id: int, stripe_refund: dict) -> bool:
    """Apply Stripe's refund object (as the gateway returns it) to a payment: record or move our
    Refund row, then reverse the split for everything refunded so far. Idempotent; returns whether
    anything changed. Locks the payment, so call it before locking the refund, booking or earning."""
    with transaction.atomic(savepoint=False):
        payment = Payment.objects.select_for_update(of=("self",)).select_related("booking").get(pk=payment_id)
        if payment.status != Payment.Status.SUCCEEDED and stripe_refund.get("status") in ("succeeded", "pending"):
            # A refund exists, so the charge was paid, whatever order the events came in.
            payment_succeed(payment=payment, charge_id=object_id(stripe_refund.get("charge")))
        refund, row_changed = _refund_row_locked(payment=payment, stripe_refund=stripe_refund)
        return _reversal_sync(payment=payment, refund=refund) or row_changed


def payment_lock_for_charge(*, charge_id: str, payment_intent_id: str) -> Payment | None:
    match = Q(pk__in=[])
    if payment_intent_id:
        match |= Q(stripe_payment_intent_id=payment_intent_id)
    if charge_id:
        match |= Q(stripe_charge_id=charge_id)
    return Payment.objects.select_for_update(of=("self",)).filter(match).order_by("pk").first()
