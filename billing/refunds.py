"""Refunds: the cancellation policy, recording a refund and sending it to Stripe, admin refunds.

A refund is recorded in our database first (status `pending`) in the same transaction as the fact
that causes it (a cancellation, an admin's decision), and sent to Stripe by a worker once that
commits, with the idempotency key `refund-<refund id>`. Stripe's answer moves it to `requested`;
`charge.refunded` / `charge.refund.updated` confirm it, and the webhook side (`refund_apply`) updates
`payment.amount_refunded`, reverses the split in the ledger and shrinks the listener's earning. The
refund's metadata carries `refund_id`, which is how that handler finds our row.

Until it is confirmed, a refund in flight still counts against what remains refundable, so two
quick requests can never refund more than was paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing import money, stripe_gateway
from billing.models import Payment, Refund
from billing.stripe_gateway import refunds as stripe_refunds
from common.errors import Conflict, Invalid
from workers.outbox import enqueue_or_leave_to_sweeper, enqueue_stale
from workers.retry import backoff_seconds

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
    return enqueue_or_leave_to_sweeper(refund_create_task, refund_id, what="refund")


def refund_send(*, refund_id: int) -> Refund:
    """Create the refund on Stripe, once. The row lock serialises workers; the idempotency key
    covers a crash between Stripe's answer and our save, and the same parameters are sent every time."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().select_related("payment").get(pk=refund_id)
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
    payment_id = payment.pk
    transaction.on_commit(lambda: _payment_intent_cancel_enqueue(payment_id=payment_id))


def _payment_intent_cancel_enqueue(*, payment_id: int) -> None:
    try:
        payment_intent_cancel_task.apply_async(args=[payment_id], retry=False)
    except Exception:
        logger.warning("could not enqueue the cancellation of payment %s's PaymentIntent", payment_id)


def payment_intent_cancel(*, payment_id: int) -> Payment:
    """Cancel the PaymentIntent of a cancelled, unpaid booking. If the talker paid in the meantime
    (Stripe refuses: the intent already succeeded), refund the whole payment instead, once."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status in (Payment.Status.CANCELED, Payment.Status.FAILED) or not payment.stripe_payment_intent_id:
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
            already = Refund.objects.filter(payment=payment, policy=Policy.PAID_AFTER_CANCEL).exists()
            if not already:
                refund_create(
                    payment_id=payment.pk,
                    amount=payment.amount,
                    reason="The booking was cancelled before the payment went through.",
                    policy=Policy.PAID_AFTER_CANCEL,
                    require_succeeded=False,
                )
            return payment
        if intent["status"] == Payment.Status.CANCELED and payment.status != Payment.Status.CANCELED:
            payment.status = Payment.Status.CANCELED
            payment.save(update_fields=["status", "updated_at"])
        return payment


# --- Tasks ------------------------------------------------------------------------------------------


@shared_task(name="billing.refund_create", bind=True, acks_late=True, max_retries=8)
def refund_create_task(self, refund_id: int) -> str:
    try:
        refund = refund_send(refund_id=refund_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return refund.status


@shared_task(name="billing.refunds_sweep", acks_late=True)
def refunds_sweep_task() -> int:
    return refunds_sweep_pending()


@shared_task(name="billing.payment_intent_cancel", bind=True, acks_late=True, max_retries=8)
def payment_intent_cancel_task(self, payment_id: int) -> str:
    try:
        payment = payment_intent_cancel(payment_id=payment_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return payment.status
