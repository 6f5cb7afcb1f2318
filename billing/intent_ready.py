"""Waiting for a payment's PaymentIntent without polling (PostgreSQL LISTEN/NOTIFY, `common.ready`).

`create_booking` answers with the PaymentIntent's client secret when the worker creates it within a
short bounded wait (BOOKING_PAYMENT_WAIT_SECONDS), or 202 and a poll URL. The worker storing the intent
(billing.payments) notifies the payment's channel inside the transaction that stores it.
"""

from __future__ import annotations

from billing.models import Payment
from common.ready import ready_notify, ready_wait


def _channel(payment_id: int) -> str:
    return f"talkpay_payment_intent_{int(payment_id)}"


def payment_intent_ready_notify(*, payment_id: int) -> None:
    """Wake whoever waits for this payment's intent, when the current transaction commits."""
    ready_notify(_channel(payment_id))


def payment_intent_wait(*, payment_id: int, timeout: float) -> Payment:
    """The payment once it has left `awaiting_intent` (intent created, or creation failed), or as it
    is when `timeout` seconds have passed."""
    return ready_wait(
        channel=_channel(payment_id),
        read=lambda: Payment.objects.get(pk=payment_id),
        done=lambda payment: payment.status != Payment.Status.AWAITING_INTENT,
        timeout=timeout,
    )
