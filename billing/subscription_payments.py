"""The payment of a subscription period: Stripe took the money through the invoice's PaymentIntent, so the
period's booking gets a Payment row for that intent, and `payments.payment_succeed` books it exactly as a
single booking's payment (the split in the ledger, the booking confirmed, the listener's earning). The
later `payment_intent.succeeded` event of that intent finds this row by its id and changes nothing more.
"""

from __future__ import annotations

from billing.models import Payment
from billing.payments import payment_record_for_booking, payment_succeed
from billing.webhooks.outcomes import EventFlagged
from common import locks


def payment_record_for_paid_invoice(*, booking, payment_intent_id: str, charge_id: str) -> tuple[Payment, bool]:
    """Record and book the payment of `booking` (pending, with the invoice's amounts) by `payment_intent_id`,
    once. Returns (payment, whether anything changed)."""
    existing = locks.lock(Payment.objects.select_related("booking").filter(stripe_payment_intent_id=payment_intent_id))
    payment = existing.first()
    if payment is None:
        payment = locks.lock(Payment.objects.select_related("booking").filter(booking_id=booking.pk)).first()
    if payment is not None:
        if payment.booking_id != booking.pk or payment.stripe_payment_intent_id != payment_intent_id:
            raise EventFlagged(
                f"PaymentIntent {payment_intent_id} for booking {booking.pk} meets payment {payment.pk} "
                f"(booking {payment.booking_id}, intent {payment.stripe_payment_intent_id})"
            )
        return payment, payment_succeed(payment=payment, charge_id=charge_id)
    payment = payment_record_for_booking(
        booking=booking, status=Payment.Status.PROCESSING, stripe_payment_intent_id=payment_intent_id
    )
    payment_succeed(payment=payment, charge_id=charge_id)
    return payment, True
