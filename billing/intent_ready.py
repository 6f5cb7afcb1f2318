"""Waiting for a payment's PaymentIntent without polling: PostgreSQL LISTEN/NOTIFY.

`create_booking` answers with the PaymentIntent's client secret when the worker creates it within a
short bounded wait (BOOKING_PAYMENT_WAIT_SECONDS), or 202 and a poll URL. The worker storing the intent
(billing.payments) sends a NOTIFY on the payment's channel inside the transaction that stores it, so
PostgreSQL delivers it when, and only if, that transaction commits. The waiting request LISTENs first,
then reads the row once (the intent may already be there), then sleeps on its database socket until
the notification or the deadline, and reads the row once more: two queries and one wake-up, where the
poll it replaces ran a query every 20-200 ms for the whole wait.

It needs the request's own connection in autocommit (outside any transaction, as `create_booking`
answers after its commit) and a connection that is the session's own: through a pooler in transaction
mode (pgbouncer) LISTEN does not work, and the wait simply runs to its deadline. SQLite (`make run`
without DATABASE_URL) has no notifications: there the row is polled.
"""

from __future__ import annotations

import time

from django.db import connection

from billing.models import Payment

POLL_FIRST_DELAY, POLL_MAX_DELAY = 0.02, 0.2


def _channel(payment_id: int) -> str:
    return f"talkpay_payment_intent_{int(payment_id)}"


def _notifications_available() -> bool:
    return connection.vendor == "postgresql" and not connection.in_atomic_block


def payment_intent_ready_notify(*, payment_id: int) -> None:
    """Wake whoever waits for this payment's intent, when the current transaction commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [_channel(payment_id)])


def payment_intent_wait(*, payment_id: int, timeout: float) -> Payment:
    """The payment once it has left `awaiting_intent` (intent created, or creation failed), or as it
    is when `timeout` seconds have passed."""
    if timeout <= 0 or not _notifications_available():
        return _poll(payment_id=payment_id, timeout=timeout)
    channel = _channel(payment_id)
    with connection.cursor() as cursor:
        cursor.execute(f'LISTEN "{channel}"')
    try:
        payment = Payment.objects.get(pk=payment_id)
        if payment.status != Payment.Status.AWAITING_INTENT:
            return payment
        _sleep_until_notified(channel, deadline=time.monotonic() + timeout)
        return Payment.objects.get(pk=payment_id)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'UNLISTEN "{channel}"')


def _sleep_until_notified(channel: str, *, deadline: float) -> None:
    raw = connection.connection
    while (remaining := deadline - time.monotonic()) > 0:
        # Notifications of channels an earlier request on this connection listened to may be queued
        # on it (it is reused across requests): only ours ends the wait.
        for notification in raw.notifies(timeout=remaining, stop_after=1):
            if notification.channel == channel:
                return


def _poll(*, payment_id: int, timeout: float) -> Payment:
    deadline = time.monotonic() + timeout
    delay = POLL_FIRST_DELAY
    while True:
        payment = Payment.objects.get(pk=payment_id)
        if payment.status != Payment.Status.AWAITING_INTENT or time.monotonic() >= deadline:
            return payment
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_DELAY)
