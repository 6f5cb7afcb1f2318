"""Stripe refunds and PaymentIntent cancellation, for cancellations and admin refunds.

Functions take our own ids and return plain dicts. A refund's idempotency key is derived from our
Refund row (`refund-<id>`), and its metadata carries `refund_id`, so the `charge.refunded` handler can
match Stripe's refund to our row even if our save after this call was lost.
"""

from __future__ import annotations

from billing.stripe_gateway import as_dict, call, client, options


def refund_create(
    *, refund_id: int, payment_id: int, booking_id: int, payment_intent_id: str, amount: int, reason: str = ""
) -> dict:
    refund = call(
        client().v1.refunds.create,
        params={
            "payment_intent": payment_intent_id,
            "amount": amount,
            "reason": "requested_by_customer",
            "metadata": {
                "refund_id": str(refund_id),
                "payment_id": str(payment_id),
                "booking_id": str(booking_id),
                # Stripe caps metadata values at 500 characters.
                "talkpay_reason": reason[:500],
            },
        },
        options=options(f"refund-{refund_id}"),
    )
    return as_dict(refund)


def payment_intent_cancel(*, payment_id: int, payment_intent_id: str) -> dict:
    """Cancel a PaymentIntent that was never paid. Stripe refuses (permanent error, code
    `payment_intent_unexpected_state`) when it already succeeded or was canceled."""
    intent = call(
        client().v1.payment_intents.cancel,
        payment_intent_id,
        params={"cancellation_reason": "requested_by_customer"},
        options=options(f"pi-cancel-payment-{payment_id}"),
    )
    return as_dict(intent)
