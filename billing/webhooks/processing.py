"""Processing a stored event: once, under its row lock, through the dispatch table."""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import WebhookEvent
from billing.webhooks.dispatch import webhook_handler_for
from billing.webhooks.outcomes import EventFlagged
from common.prepared import PreparedQuery, row_save
from workers.outbox import enqueue_or_leave_to_sweeper

logger = logging.getLogger(__name__)

OUTCOMES = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)
DONE = (*OUTCOMES, WebhookEvent.Status.FLAGGED)


class WebhookHandlerFailed(Exception):
    """The handler raised; the error is stored on the event, the task decides whether to retry."""


def _flag_record(*, webhook_event_id: int, flag: EventFlagged) -> str:
    reason = str(flag)
    with transaction.atomic():
        event = _event_locked(webhook_event_id)
        if event is None:
            return "missing"
        if flag.on_flag is not None:
            flag.on_flag()
        if event.status != WebhookEvent.Status.PROCESSED:
            event.status = WebhookEvent.Status.FLAGGED
        event.attempts += 1
        event.last_error = reason[:4000]
        event.processed_at = timezone.now()
        event.save(update_fields=["status", "attempts", "last_error", "processed_at"])
        logger.error("%s %s flagged for an operator: %s", event.type, event.stripe_event_id, reason)
        return event.status


def webhook_event_enqueue(*, webhook_event_id: int) -> bool:
    """Hand the event to a worker. A broker outage is logged, not raised: the event is stored, and the
    sweeper (run by the reconciliation job) enqueues it again."""
    return enqueue_or_leave_to_sweeper("billing.webhook_process", webhook_event_id, what="webhook event")


# The raw body and headers are for audit and replay by hand; the handler needs the payload only. Run
# for every event: compiled once (common.prepared).
_EVENT_LOCKED = PreparedQuery(
    lambda pk: WebhookEvent.objects.select_for_update().defer("raw_body", "headers").filter(pk=pk).order_by()[:1],
    pk=int,
)


def _event_locked(webhook_event_id: int) -> WebhookEvent | None:
    return _EVENT_LOCKED.first(pk=webhook_event_id)


def _failure_record(*, webhook_event_id: int, error: Exception, last_try: bool) -> WebhookEvent | None:
    with transaction.atomic():
        event = _event_locked(webhook_event_id)
        if event is None:
            return None
        event.attempts += 1
        if event.status not in DONE:
            event.status = WebhookEvent.Status.FAILED if last_try else WebhookEvent.Status.PENDING
        event.last_error = "".join(traceback.format_exception(error, limit=-8))[-4000:]
        event.save(update_fields=["status", "attempts", "last_error"])
        return event


def webhook_event_process(*, webhook_event_id: int, last_try: bool = True, force: bool = False) -> str:
    """Run the event's handler once, under the event's row lock, and store the outcome.

    An event already processed or ignored is left alone unless `force` (a replay), and a replay never
    turns a processed event into anything else. When the handler (or the commit) fails, everything it
    wrote is rolled back with the transaction, and the error is stored in a new one (status `failed` on
    the last try, still `pending` while retries remain) and raised as `WebhookHandlerFailed`.
    """
    try:
        with transaction.atomic():
            event = _event_locked(webhook_event_id)
            if event is None:
                return "missing"
            if event.status in DONE and not force:
                return event.status
            handler = webhook_handler_for(event.type)
            outcome = WebhookEvent.Status.IGNORED if handler is None else handler(event.payload)
            if outcome not in OUTCOMES:
                raise ValueError(f"handler for {event.type} returned {outcome!r}")
            if event.status != WebhookEvent.Status.PROCESSED:
                event.status = outcome
            event.attempts += 1
            event.last_error = ""
            event.processed_at = timezone.now()
            row_save(event, update_fields=("status", "attempts", "last_error", "processed_at"))
            return event.status
    except EventFlagged as flag:
        return _flag_record(webhook_event_id=webhook_event_id, flag=flag)
    except Exception as error:
        failed = _failure_record(webhook_event_id=webhook_event_id, error=error, last_try=last_try)
        label = f"{failed.type} {failed.stripe_event_id}" if failed else f"webhook event {webhook_event_id}"
        logger.warning("%s failed (attempt %s): %s", label, failed.attempts if failed else "?", error)
        raise WebhookHandlerFailed(f"{label}: {error}") from error


def webhook_event_replay(*, stripe_event_id: str) -> str:
    """Run an event again now, whatever its status (admin action, `manage.py replay_webhook`).
    Handlers are idempotent, so replaying a processed event changes nothing."""
    webhook_event_id = WebhookEvent.objects.values_list("pk", flat=True).get(stripe_event_id=stripe_event_id)
    try:
        return webhook_event_process(webhook_event_id=webhook_event_id, last_try=True, force=True)
    except WebhookHandlerFailed:
        return WebhookEvent.Status.FAILED


def _sweep_grace() -> timedelta:
    """How long a pending event is left to the message that should process it before the sweeper
    enqueues it again (the broker was down when it arrived, or a worker died holding its message)."""
    return timedelta(seconds=settings.WEBHOOK_SWEEP_AFTER_SECONDS)


def webhook_event_retry_scheduled(*, webhook_event_id: int, countdown: float) -> None:
    """A failed attempt's retry waits `countdown` seconds: the sweeper leaves the event to it until then."""
    due = timezone.now() + timedelta(seconds=countdown) + _sweep_grace()
    WebhookEvent.objects.filter(pk=webhook_event_id).update(sweep_after=due)


def webhook_events_sweep(*, limit: int = 500) -> int:
    """Enqueue again pending events whose message is overdue: never attempted within the grace after
    they arrived, or not retried within the grace after their scheduled retry. Stamps each one it
    enqueued, so the next sweep leaves it a grace period. Safe to overdo: processing is locked and a
    done event is skipped."""
    now = timezone.now()
    due = Q(sweep_after__lt=now) | Q(sweep_after__isnull=True, received_at__lt=now - _sweep_grace())
    stale = list(
        WebhookEvent.objects.filter(due, status=WebhookEvent.Status.PENDING)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    enqueued = 0
    for pk in stale:
        if webhook_event_enqueue(webhook_event_id=pk):
            WebhookEvent.objects.filter(pk=pk).update(sweep_after=timezone.now() + _sweep_grace())
            enqueued += 1
    return enqueued


def payment_intent_events_unprocessed(*, payment_intent_id: str) -> bool:
    """Whether an event about this PaymentIntent (or its charge) is stored but not processed yet, or
    failed: until it is, we do not know what Stripe did with the payment."""
    if not payment_intent_id:
        return False
    return (
        WebhookEvent.objects.filter(status__in=(WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED))
        .filter(
            Q(payload__data__object__id=payment_intent_id) | Q(payload__data__object__payment_intent=payment_intent_id)
        )
        .exists()
    )
