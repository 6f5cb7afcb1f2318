"""Celery tasks of billing: explicit stable names, ids as arguments, each calls one service.
Services enqueue them by name through `workers.outbox`, never by importing this module."""

import logging

from celery import shared_task

from billing import fees, payments, refunds, stripe_gateway
from workers.outbox import enqueue_or_leave_to_sweeper
from workers.retry import backoff_seconds

logger = logging.getLogger(__name__)


@shared_task(name="billing.payment_intent_create", bind=True, acks_late=True, max_retries=8)
def payment_intent_create_task(self, payment_id: int) -> str:
    try:
        payment = payments.payment_intent_create(payment_id=payment_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return payment.status


@shared_task(name="billing.payment_intents_sweep", acks_late=True)
def payment_intents_sweep_task() -> int:
    return payments.payments_sweep_awaiting_intent()


@shared_task(name="billing.payment_intent_cancel", bind=True, acks_late=True, max_retries=8)
def payment_intent_cancel_task(self, payment_id: int) -> str:
    try:
        payment = refunds.payment_intent_cancel(payment_id=payment_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return payment.status


@shared_task(name="billing.payment_intent_cancels_sweep", acks_late=True)
def payment_intent_cancels_sweep_task() -> int:
    return refunds.payment_intent_cancels_sweep()


@shared_task(name="billing.refund_create", bind=True, acks_late=True, max_retries=8)
def refund_create_task(self, refund_id: int) -> str:
    try:
        refund = refunds.refund_send(refund_id=refund_id)
    except stripe_gateway.TransientStripeError as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error
    return refund.status


@shared_task(name="billing.refunds_sweep", acks_late=True)
def refunds_sweep_task() -> int:
    return refunds.refunds_sweep_pending()


@shared_task(name="billing.payment_fees_book", bind=True, acks_late=True, max_retries=10)
def payment_fees_book_task(self, payment_id: int) -> int:
    try:
        return fees.payment_fees_book(payment_id=payment_id)
    except (fees.FeesNotSettled, stripe_gateway.TransientStripeError) as error:
        # Past the retries the sweeper comes back to it.
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error


@shared_task(name="billing.payment_succeeded_followup", bind=True, acks_late=True, max_retries=10)
def payment_succeeded_followup_task(self, payment_id: int) -> int:
    """A succeeded payment's follow-ups in one task: the talker's receipt (sent once: its Redis marker),
    then Stripe's fee, retried like `billing.payment_fees_book` until Stripe has settled it. A receipt
    that fails (the mail server is down) is handed to its own task, which retries it, so the fee never
    waits on the mail."""
    if not self.request.retries:
        try:
            notifications.payment_receipt_task.run(payment_id)
        except Exception:
            logger.warning("receipt for payment %s failed; handed to its own task", payment_id, exc_info=True)
            enqueue_or_leave_to_sweeper(notifications.RECEIPT, payment_id, what="notification")
    # Booked meanwhile from charge.updated (Stripe settled the charge after this task first asked):
    # nothing left to read from Stripe.
    if fees.payment_charge_fee_booked(payment_id=payment_id):
        return 0
    try:
        return fees.payment_fees_book(payment_id=payment_id)
    except (fees.FeesNotSettled, stripe_gateway.TransientStripeError) as error:
        raise self.retry(exc=error, countdown=backoff_seconds(self.request.retries)) from error


@shared_task(name="billing.payment_fees_sweep", acks_late=True)
def payment_fees_sweep_task() -> int:
    return fees.payment_fees_sweep()


# --- Webhooks and reconciliation -------------------------------------------------------------------

# About 8.5 minutes of backoff in all (2 s doubling, capped, with jitter), then the event stays failed.
WEBHOOK_MAX_RETRIES = 8


# No result stored: the outcome is on the WebhookEvent row, and skipping the result backend saves two
# Redis writes per event.
@shared_task(
    name="billing.webhook_process", bind=True, acks_late=True, ignore_result=True, max_retries=WEBHOOK_MAX_RETRIES
)
def webhook_process_task(self, webhook_event_id: int) -> str:
    from billing.webhooks.processing import webhook_event_process

    last_try = self.request.retries >= self.max_retries
    try:
        return webhook_event_process(webhook_event_id=webhook_event_id, last_try=last_try)
    except Exception as error:
        # Any failure, the handler's or the commit's (a database error), is retried with backoff.
        if last_try:
            return "failed"
        from billing.webhooks.processing import webhook_event_retry_scheduled

        countdown = backoff_seconds(self.request.retries)
        webhook_event_retry_scheduled(webhook_event_id=webhook_event_id, countdown=countdown)
        raise self.retry(exc=error, countdown=countdown) from error


@shared_task(name="billing.webhook_events_sweep", acks_late=True)
def webhook_events_sweep_task() -> int:
    from billing.webhooks.processing import webhook_events_sweep

    return webhook_events_sweep()


@shared_task(name="billing.payment_reconcile", acks_late=True)
def payment_reconcile_task() -> dict:
    from billing.reconciliation import payments_reconcile
    from billing.webhooks.processing import webhook_events_sweep

    counts = payments_reconcile()
    counts["webhook_events_enqueued"] = webhook_events_sweep()
    return counts


# The notify_* tasks live beside what they tell about; imported here so the worker registers them.
from billing import notifications  # noqa: E402
