"""Processing a stored event: once, under its row lock, through the dispatch table."""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from billing.models import WebhookEvent
from billing.webhooks.dispatch import webhook_handler_for
from billing.webhooks.outcomes import EventFlagged
from workers.outbox import enqueue_or_leave_to_sweeper

logger = logging.getLogger(__name__)

OUTCOMES = (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED)
DONE = (*OUTCOMES, WebhookEvent.Status.FLAGGED)
# Pending events older than this with no worker on them are enqueued again by the sweeper (the broker
# was down when they arrived, or a message was lost). Longer than the retry backoff of a failing event.
SWEEP_AFTER = timedelta(minutes=30)


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


def _event_locked(webhook_event_id: int) -> WebhookEvent | None:
    # The raw body and headers are for audit and replay by hand; the handler needs the payload only.
    return WebhookEvent.objects.select_for_update().defer("raw_body", "headers").filter(pk=webhook_event_id).first()


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
            event.save(update_fields=["status", "attempts", "last_error", "processed_at"])
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


def webhook_events_sweep(*, older_than: timedelta = SWEEP_AFTER, limit: int = 500) -> int:
    """Enqueue again events still pending long after they arrived. Safe to overdo: processing is
    locked and a done event is skipped."""
    cutoff = timezone.now() - older_than
    stale = list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(webhook_event_enqueue(webhook_event_id=pk) for pk in stale)
